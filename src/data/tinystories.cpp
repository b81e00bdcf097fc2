#include "data/tinystories.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "data/dataset_prepare.h"
#include "data/document_reader.h"
#include "io/atomic_file.h"
#include "io/dataset_manifest.h"
#include "io/token_shards.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace fs = std::filesystem;

const char* const kTinyStoriesPretokUrl =
    "https://huggingface.co/datasets/enio/TinyStories/resolve/main/tok32000/"
    "TinyStories_tok32000.tar.gz?download=true";
const char* const kTinyStoriesRawUrl =
    "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
    "TinyStories_all_data.tar.gz";

namespace {

constexpr int64_t kLlama2Vocab = 32000;
constexpr int32_t kLlama2Bos = 1;

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) without a shell. stdout/stderr are captured
// when asked, otherwise inherited (so curl's progress meter shows).
ProcessResult run_process(const std::vector<std::string>& argv, bool capture) {
  int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1};
  if (capture && (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0))
    fail_runtime(argv[0], std::string("pipe: ") + std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) fail_runtime(argv[0], std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    if (capture) {
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      ::close(out_pipe[0]);
      ::close(err_pipe[0]);
      ::close(out_pipe[1]);
      ::close(err_pipe[1]);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ProcessResult result;
  if (capture) {
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    std::string* sinks[2] = {&result.out, &result.err};
    int open_fds = 2;
    char buf[1 << 15];
    while (open_fds > 0) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n > 0) {
          sinks[i]->append(buf, static_cast<size_t>(n));
        } else if (n == 0 || errno != EINTR) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string first_line(const std::string& text) {
  std::string t(trim_whitespace(text));
  return t.substr(0, t.find('\n'));
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    if (end > pos) lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return lines;
}

bool unsafe_member(const std::string& name) {
  if (name.empty() || name[0] == '/') return true;
  for (const auto& part : fs::path(name))
    if (part == "..") return true;
  return false;
}

std::string archive_name_from_url(const std::string& url) {
  std::string name = url.substr(0, url.find('?'));
  name = name.substr(name.find_last_of('/') + 1);
  return name.empty() ? "tinystories.tar.gz" : name;
}

void download(const std::string& url, const std::string& dest) {
  const std::string part = dest + ".part";
  std::fprintf(stderr, "tinystories: downloading %s\n", url.c_str());
  // --fail: an HTTP error must not leave an error page behind as "the archive".
  const ProcessResult r = run_process(
      {"curl", "-L", "--fail", "--retry", "3", "-C", "-", "--progress-bar", "-o", part, url},
      false);
  if (r.exit_code == 127)
    fail_runtime("curl", "curl is not installed (apt-get install curl), or use --archive");
  if (r.exit_code != 0) {
    std::error_code ec;
    const bool partial = fs::exists(part, ec) && fs::file_size(part, ec) > 0;
    fail_runtime(url,
                 "download failed (curl exit code " + std::to_string(r.exit_code) + ")" +
                     (partial ? "; the partial file " + part + " is kept so a rerun resumes" : ""));
  }
  if (::rename(part.c_str(), dest.c_str()) != 0)
    fail_runtime(dest, std::string("rename failed: ") + std::strerror(errno));
}

void verify_archive(const std::string& archive, const std::string& sha256) {
  std::ifstream in(archive, std::ios::binary);
  if (!in) fail_input(archive, "archive does not exist or cannot be opened");
  unsigned char magic[2] = {0, 0};
  in.read(reinterpret_cast<char*>(magic), 2);
  if (in.gcount() < 2 || magic[0] != 0x1f || magic[1] != 0x8b) {
    char got[16];
    std::snprintf(got, sizeof(got), "%02x %02x", magic[0], magic[1]);
    fail_input(archive, "not a gzip archive", "bytes 1f 8b", got);
  }
  if (!sha256.empty()) {
    const ProcessResult r = run_process({"sha256sum", "--", archive}, true);
    if (r.exit_code != 0) fail_runtime(archive, "sha256sum failed: " + first_line(r.err));
    const std::string got = r.out.substr(0, r.out.find(' '));
    std::string want = sha256;
    std::transform(want.begin(), want.end(), want.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (got != want) fail_input(archive, "checksum mismatch", "sha256 " + want, "sha256 " + got);
  }
}

// Moves every file matching `keep` found under `from` into `to`, flat. Two
// files with one name are an error (the layout would be ambiguous).
std::vector<std::string> gather(const std::string& from, const std::string& to,
                                const std::regex& keep, const std::string& archive) {
  std::vector<fs::path> found;
  for (const auto& e : fs::recursive_directory_iterator(from))
    if (e.is_regular_file() && std::regex_match(e.path().filename().string(), keep))
      found.push_back(e.path());
  std::sort(found.begin(), found.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  std::vector<std::string> names;
  for (const auto& p : found) {
    const std::string name = p.filename().string();
    if (!names.empty() && names.back() == name)
      fail_input(archive, "archive holds two files named " + name);
    fs::rename(p, fs::path(to) / name);
    names.push_back(name);
  }
  return names;
}

struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

size_t json_files_in(const std::string& dir) {
  std::error_code ec;
  size_t n = 0;
  if (!fs::is_directory(dir, ec)) return 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) n += e.path().extension() == ".json";
  return n;
}

// Raw stories -> <dir>/tok<V>/ shards when a tokenizer is given (skipped when
// a manifest made with the same tokenizer is already there).
void tokenize_raw(const TinyStoriesOptions& options, TinyStoriesResult& result) {
  if (options.tokenizer.empty()) return;
  const auto tok = load_tokenizer(options.tokenizer);
  const std::string out =
      (fs::path(options.dir) / ("tok" + std::to_string(tok->vocab_size()))).string();
  result.shards_dir = out;
  const fs::path manifest_path = fs::path(out) / kManifestName;
  if (!options.force && fs::exists(manifest_path)) {
    const DatasetManifest m = read_manifest(manifest_path.string());
    if (m.tokenizer.value("xxh64", std::string()) == tok->checksum_hex()) {
      result.tokens = m.tokens("train") + m.tokens("val");
      result.documents = m.documents("train") + m.documents("val");
      return;
    }
  }
  PrepareOptions prep;
  prep.tokenizer_path = options.tokenizer;
  prep.inputs = {result.data_dir};
  prep.format = TextFormat::jsonl;
  prep.out_dir = out;
  prep.val_fraction = options.val_fraction;
  prep.threads = options.threads;
  prep.progress = options.progress;
  const PrepareResult pr = prepare_dataset(prep);
  result.tokens = pr.manifest.tokens("train") + pr.manifest.tokens("val");
  result.documents = pr.manifest.documents("train") + pr.manifest.documents("val");
}

}  // namespace

TinyStoriesResult fetch_tinystories(const TinyStoriesOptions& options) {
  if (!options.kind.empty() && options.kind != "pretok" && options.kind != "raw")
    fail_input("--kind", "unknown TinyStories archive kind", "pretok or raw", options.kind);
  std::error_code ec;
  fs::create_directories(options.dir, ec);
  if (ec || !fs::is_directory(options.dir))
    fail_input(options.dir, "cannot create directory" + (ec ? ": " + ec.message() : ""));
  const fs::path dir(options.dir);

  TinyStoriesResult result;
  const std::string pretok_dir = (dir / "tok32000").string();
  const std::string raw_dir = (dir / "TinyStories_all_data").string();

  // Already done? (Only when the kind is known before looking at an archive.)
  const std::string planned_kind =
      options.kind.empty() && options.archive.empty() ? "pretok" : options.kind;
  if (!options.force && planned_kind == "pretok" &&
      fs::exists(fs::path(pretok_dir) / kManifestName)) {
    result.kind = "pretok";
    result.data_dir = result.shards_dir = pretok_dir;
    result.already_present = true;
    const DatasetManifest m = read_manifest((fs::path(pretok_dir) / kManifestName).string());
    result.files = m.shards.size();
    result.tokens = m.tokens("train") + m.tokens("val");
    result.documents = m.documents("train") + m.documents("val");
    return result;
  }

  if (!options.force && planned_kind == "raw" && json_files_in(raw_dir) > 0) {
    result.kind = "raw";
    result.data_dir = raw_dir;
    result.files = json_files_in(raw_dir);
    result.already_present = true;
    tokenize_raw(options, result);
    return result;
  }

  // 1. The archive: given, or downloaded.
  std::string archive = options.archive;
  if (archive.empty()) {
    const std::string url = !options.url.empty()    ? options.url
                            : planned_kind == "raw" ? kTinyStoriesRawUrl
                                                    : kTinyStoriesPretokUrl;
    archive = (dir / archive_name_from_url(url)).string();
    if (!fs::exists(archive) || options.force) download(url, archive);
  }
  result.archive = archive;
  verify_archive(archive, options.sha256);

  // 2. What it holds.
  const ProcessResult listing = run_process({"tar", "-tzf", archive}, true);
  if (listing.exit_code == 127) fail_runtime("tar", "tar is not installed");
  if (listing.exit_code != 0)
    fail_input(archive, "not a readable .tar.gz archive: " + first_line(listing.err));
  const std::regex bin_re(R"(data\d+\.bin)"), json_re(R"(.*\.json)");
  size_t bins = 0, jsons = 0;
  for (const std::string& member : split_lines(listing.out)) {
    if (unsafe_member(member))
      fail_input(archive, "archive member escapes the target directory", "", member);
    const std::string base = fs::path(member).filename().string();
    bins += std::regex_match(base, bin_re);
    jsons += std::regex_match(base, json_re);
  }
  std::string kind = options.kind;
  if (kind.empty()) kind = bins > 0 ? "pretok" : "raw";
  if ((kind == "pretok" && bins == 0) || (kind == "raw" && jsons == 0))
    fail_input(archive, "archive does not have the TinyStories layout",
               kind == "pretok" ? "data*.bin token shards" : "*.json story files",
               std::to_string(bins) + " data*.bin and " + std::to_string(jsons) + " *.json files");
  result.kind = kind;

  // 3. Extract into a scratch directory inside `dir`.
  RemoveOnExit scratch{temporary_sibling((dir / "extract").string())};
  fs::create_directory(scratch.path);
  std::fprintf(stderr, "tinystories: extracting %s\n", archive.c_str());
  const ProcessResult extract = run_process(
      {"tar", "-xzf", archive, "-C", scratch.path, "--no-same-owner", "--no-same-permissions"},
      true);
  if (extract.exit_code != 0) fail_input(archive, "extraction failed: " + first_line(extract.err));

  if (kind == "pretok") {
    // 4a. Shards + manifest, validated, then published in one rename.
    StagingDirectory stage(pretok_dir);
    const std::vector<std::string> names = gather(scratch.path, stage.path(), bin_re, archive);
    DatasetOptions all;
    all.split = "all";
    all.vocab_size = kLlama2Vocab;
    // Sizes and ids < 32000; errors name the archive member, not the scratch path.
    const TokenDataset ds = [&] {
      try {
        return TokenDataset::open(stage.path(), all);
      } catch (const InputError& e) {
        std::string message = e.what();
        const std::string scratch_prefix = stage.path() + "/";
        if (message.rfind(scratch_prefix, 0) == 0)
          message = archive + ": " + message.substr(scratch_prefix.size());
        throw InputError(message);
      }
    }();
    DatasetManifest m;
    m.vocab_size = kLlama2Vocab;
    m.dtype = TokenDType::uint16;
    m.bos_id = kLlama2Bos;
    m.tokenizer = {{"name", "llama2"},
                   {"vocab_size", kLlama2Vocab},
                   {"note", "Llama 2 SentencePiece tokenizer; stories pretokenized by llama2.c"}};
    m.source = {{"tool", "kiln data tinystories"}, {"archive", archive}, {"kind", "pretok"}};
    for (size_t i = 0; i < ds.shards().size(); ++i) {
      const TokenSpan span = ds.shard_tokens(i);
      ManifestShard s;
      s.file = names[i];
      s.split = ds.shards()[i].split;
      s.tokens = span.count;
      for (uint64_t t = 0; t < span.count; ++t) s.documents += span.at(t) == kLlama2Bos;
      s.xxh64 = hex64(span.data ? XXH64(span.data, span.count * 2, 0) : XXH64("", 0, 0));
      m.shards.push_back(s);
    }
    write_manifest(stage.path(), m);
    stage.commit();
    result.data_dir = result.shards_dir = pretok_dir;
    result.files = names.size();
    result.tokens = m.tokens("train") + m.tokens("val");
    result.documents = m.documents("train") + m.documents("val");
    return result;
  }

  // 4b. Raw stories: publish the JSON files, then optionally tokenize them.
  StagingDirectory stage(raw_dir);
  const std::vector<std::string> names = gather(scratch.path, stage.path(), json_re, archive);
  stage.commit();
  result.data_dir = raw_dir;
  result.files = names.size();
  tokenize_raw(options, result);
  return result;
}

}  // namespace kiln
