// Shared plumbing of Kiln's libFuzzer targets.
//
// Kiln's readers take paths, so every target writes the fuzzer's bytes to a
// file in a private scratch directory (on /dev/shm, a tmpfs, when it exists)
// and hands the path to the reader. The contract under test is the one every
// Kiln reader promises: bad input ends in kiln::InputError and nothing else.
// So run_reader() swallows InputError and turns any other exception into an
// abort(), which libFuzzer records as a crash like a sanitizer report.
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <typeinfo>

#include "core/error.h"
#include "model/config.h"

namespace kiln::fuzz {

// <KILN_FUZZ_TMPDIR or /dev/shm or /tmp>/kiln-fuzz-XXXXXX, removed at exit.
// The name lives on the heap, never destroyed, so the exit handler that
// removes the directory can still read it.
inline const std::string& scratch_dir() {
  static const std::string* dir = [] {
    std::string base = "/tmp";
    if (const char* env = std::getenv("KILN_FUZZ_TMPDIR"); env && *env)
      base = env;
    else if (::access("/dev/shm", W_OK) == 0)
      base = "/dev/shm";
    std::string templ = base + "/kiln-fuzz-XXXXXX";
    if (!::mkdtemp(templ.data())) {
      std::perror("kiln-fuzz: mkdtemp");
      std::abort();
    }
    auto* name = new std::string(templ);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return name;
  }();
  return *dir;
}

// Writes bytes to `path` (truncating); aborts on an I/O error, which would be
// a harness problem, not a finding.
inline void write_bytes(const std::string& path, const void* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    p += n;
    size -= size_t(n);
  }
  ::close(fd);
}

// Writes the fuzzer input to <scratch>/<name> and returns the path.
inline std::string write_input(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = scratch_dir() + "/" + name;
  write_bytes(path, data, size);
  return path;
}

[[noreturn]] inline void finding(const char* what, const char* detail) {
  std::fprintf(stderr, "kiln-fuzz: FINDING: %s: %s\n", what, detail);
  std::fflush(stderr);
  std::abort();
}

// Runs a reader; InputError is the expected rejection of bad bytes.
template <typename F>
void run_reader(F&& read) {
  try {
    read();
  } catch (const kiln::InputError&) {
    // expected: the reader refused the input with a message naming the file
  } catch (const std::exception& e) {
    finding(typeid(e).name(), e.what());
  } catch (...) {
    finding("unknown exception", "not derived from std::exception");
  }
}

// A property the reader must keep (round trips); violation is a finding.
inline void require(bool ok, const char* what) {
  if (!ok) finding("property violated", what);
}

// The model every corpus seed describes: small enough that a whole checkpoint
// is a few KB, with GQA (2 query heads per kv head) and an FFN of its own width.
inline ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.dim = 8;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.hidden_dim = 12;
  c.vocab_size = 8;
  c.max_seq_len = 4;
  c.tie_embeddings = tied;
  c.name = tied ? "fuzz-tiny-tied" : "fuzz-tiny-untied";
  c.validate(c.name);
  return c;
}

// Splits a multi-file input at each kPartSeparator (used by targets whose
// reader takes a directory of files).
inline constexpr std::string_view kPartSeparator = "\n@@KILN-FILE@@\n";

}  // namespace kiln::fuzz
