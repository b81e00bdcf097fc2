#include "io/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace kiln {
namespace {

std::string errno_text() { return std::strerror(errno); }

// Stats an open descriptor and insists on a regular file (a directory or a
// FIFO has no meaningful size and would make every later check lie).
uint64_t regular_file_size(int fd, const std::string& path) {
  struct stat st;
  if (fstat(fd, &st) != 0) fail_runtime(path, "cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) fail_input(path, "is not a regular file");
  return uint64_t(st.st_size);
}

int open_for_reading(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_input(path, "cannot open: " + errno_text());
  return fd;
}

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

std::string hex64(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

uint64_t file_size(const std::string& path) {
  FdCloser f{open_for_reading(path)};
  return regular_file_size(f.fd, path);
}

std::string read_file(const std::string& path, uint64_t max_size, const std::string& what) {
  InputFile file(path);
  if (file.size() > max_size)
    fail_input(path, what + " is too large", "at most " + std::to_string(max_size) + " bytes",
               std::to_string(file.size()) + " bytes");
  std::string bytes(file.size(), '\0');
  file.read_at(0, bytes.data(), bytes.size());
  return bytes;
}

FileDigest digest_file(const std::string& path) {
  InputFile file(path);
  XXH64_state_t* state = XXH64_createState();
  if (!state) fail_runtime(path, "out of memory for the xxHash64 state");
  std::unique_ptr<XXH64_state_t, decltype(&XXH64_freeState)> guard(state, XXH64_freeState);
  XXH64_reset(state, 0);
  // At most 1 MiB at a time, but no more than the file: small files (every
  // JSON of a checkpoint) should not pay for zeroing a megabyte.
  std::vector<char> chunk(size_t(std::min<uint64_t>(file.size(), uint64_t(1) << 20)));
  for (uint64_t offset = 0; offset < file.size();) {
    const size_t n = size_t(std::min<uint64_t>(chunk.size(), file.size() - offset));
    file.read_at(offset, chunk.data(), n);
    XXH64_update(state, chunk.data(), n);
    offset += n;
  }
  return FileDigest{file.size(), XXH64_digest(state)};
}

void fsync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_runtime(dir, "cannot open directory to fsync: " + errno_text());
  FdCloser guard{fd};
  if (::fsync(fd) != 0) fail_runtime(dir, "fsync of directory failed: " + errno_text());
}

// --- InputFile ------------------------------------------------------------------

InputFile::InputFile(const std::string& path) : path_(path) {
  fd_ = open_for_reading(path);
  try {
    size_ = regular_file_size(fd_, path);
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read_at(uint64_t offset, void* dst, size_t n) const {
  uint64_t end;
  if (!checked_add(offset, n, &end))
    fail_input(path_, "read beyond any possible file size", "an offset below 2^64",
               std::to_string(offset) + " + " + std::to_string(n));
  if (end > size_)
    fail_input(path_, "file is truncated", "at least " + std::to_string(end) + " bytes",
               std::to_string(size_) + " bytes");
  char* out = static_cast<char*>(dst);
  while (n > 0) {
    const ssize_t got = ::pread(fd_, out, n, off_t(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail_runtime(path_, "read failed: " + errno_text());
    }
    // The file shrank under us after we checked its size.
    if (got == 0) fail_input(path_, "file is truncated (changed while reading)");
    out += got;
    offset += uint64_t(got);
    n -= size_t(got);
  }
}

void InputFile::read(void* dst, size_t n) {
  read_at(cursor_, dst, n);
  cursor_ += n;
}

}  // namespace kiln
