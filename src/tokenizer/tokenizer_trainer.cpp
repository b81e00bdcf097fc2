// SentencePiece training runs in a forked child process: the library ends the
// whole process (exit(-1), no message) on some bad settings -- a vocabulary too
// small for the corpus's alphabet is the common one -- and Kiln must instead
// report a clear error and leave no output behind. The child streams status
// lines and finally the serialized model through a pipe; the parent validates
// the model and writes it atomically.
#include "tokenizer/tokenizer_trainer.h"

#include <sentencepiece_trainer.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <regex>
#include <streambuf>
#include <thread>

#include "core/error.h"
#include "core/timer.h"
#include "io/atomic_file.h"
#include "io/progress_bar.h"
#include "tokenizer/sentencepiece_tokenizer.h"

namespace sentencepiece::logging {
void SetMinLogLevel(int v);
}

namespace kiln {

namespace {

constexpr int kMetaPieces = 3 + 256;  // <unk> <s> </s> and the byte pieces

// Feeds SentencePiece the non-blank lines of every document, one input file
// in memory at a time. Errors are kept and reported through status(), since
// exceptions must not cross the library.
class DocumentLineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit DocumentLineIterator(std::vector<TextInput> files) : files_(std::move(files)) { fill(); }
  bool done() const override { return index_ >= lines_.size(); }
  void Next() override {
    if (++index_ >= lines_.size()) fill();
  }
  const std::string& value() const override { return lines_[index_]; }
  sentencepiece::util::Status status() const override {
    if (error_.empty()) return sentencepiece::util::Status();
    return sentencepiece::util::Status(sentencepiece::util::StatusCode::kInvalidArgument, error_);
  }
  const std::string& error() const { return error_; }
  uint64_t lines() const { return total_lines_; }
  uint64_t bytes() const { return total_bytes_; }

 private:
  // Loads the next file that has any lines; leaves lines_ empty at the end.
  void fill() {
    lines_.clear();
    index_ = 0;
    while (lines_.empty() && next_file_ < files_.size() && error_.empty()) {
      const TextInput& file = files_[next_file_++];
      try {
        read_documents(file, {}, [&](std::string&& doc) {
          size_t pos = 0;
          while (pos <= doc.size()) {
            size_t end = doc.find('\n', pos);
            if (end == std::string::npos) end = doc.size();
            std::string_view line = trim_whitespace(std::string_view(doc).substr(pos, end - pos));
            if (!line.empty()) lines_.emplace_back(line);
            pos = end + 1;
          }
        });
        total_bytes_ += file.bytes;
      } catch (const std::exception& e) {
        error_ = e.what();
        lines_.clear();
      }
      total_lines_ += lines_.size();
    }
  }

  std::vector<TextInput> files_;
  size_t next_file_ = 0;
  std::vector<std::string> lines_;
  size_t index_ = 0;
  uint64_t total_lines_ = 0, total_bytes_ = 0;
  std::string error_;
};

// Replaces std::cerr's buffer while SentencePiece runs: its INFO lines become
// a progress bar, and the facts Kiln needs (alphabet size, sentence count,
// fatal messages) are picked out.
class LogCapture : public std::streambuf {
 public:
  using LineFn = std::function<void(const std::string&)>;
  explicit LogCapture(LineFn on_line) : on_line_(std::move(on_line)) {}

 protected:
  int_type overflow(int_type ch) override {
    if (ch == traits_type::eof()) return traits_type::not_eof(ch);
    std::lock_guard<std::mutex> lock(mutex_);
    if (ch == '\n') {
      on_line_(line_);
      line_.clear();
    } else {
      line_.push_back(static_cast<char>(ch));
    }
    return ch;
  }

 private:
  LineFn on_line_;
  std::mutex mutex_;
  std::string line_;
};

void write_all(int fd, const void* data, size_t bytes) {
  const char* p = static_cast<const char*>(data);
  while (bytes > 0) {
    ssize_t n = ::write(fd, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // parent gone; nothing useful left to do
    }
    p += n;
    bytes -= static_cast<size_t>(n);
  }
}

void send_line(int fd, const std::string& line) {
  std::string flat = line;
  for (char& c : flat)
    if (c == '\n') c = ' ';
  flat.push_back('\n');
  write_all(fd, flat.data(), flat.size());
}

// Runs in the child. Never returns.
[[noreturn]] void child_train(const TokenizerTrainOptions& options,
                              const std::vector<TextInput>& files, int fd) {
  int alphabet = 0;
  ProgressBar bar("tokenizer", 0.0, options.progress && !options.verbose);
  std::unique_ptr<ProgressBar> merges;
  static const std::regex alphabet_re(R"(Alphabet size=(\d+))");
  static const std::regex loaded_re(R"(Loaded all (\d+) sentences)");
  static const std::regex added_re(R"(Added: freq=(\d+) size=(\d+))");
  LogCapture capture([&](const std::string& line) {
    if (options.verbose) std::fprintf(stderr, "%s\n", line.c_str());
    std::smatch m;
    if (std::regex_search(line, m, alphabet_re)) {
      alphabet = std::stoi(m[1]);
      send_line(fd, "alphabet " + m[1].str());
      const int target = options.vocab_size - kMetaPieces - alphabet;
      merges = std::make_unique<ProgressBar>("tokenizer: merges", std::max(target, 1),
                                             options.progress && !options.verbose);
    } else if (std::regex_search(line, m, loaded_re)) {
      send_line(fd, "sentences " + m[1].str());
      bar.update(0, "loaded " + m[1].str() + " lines");
    } else if (std::regex_search(line, m, added_re)) {
      if (merges) merges->update(std::stod(m[2]), m[2].str() + " merges");
    } else if (line.find("LOG(ERROR)") != std::string::npos ||
               line.find("LOG(FATAL)") != std::string::npos ||
               line.find("Check failed") != std::string::npos) {
      send_line(fd, "log " + line);
    }
  });
  std::cerr.rdbuf(&capture);
  sentencepiece::logging::SetMinLogLevel(0);

  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const std::unordered_map<std::string, std::string> spec = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"character_coverage", std::to_string(options.character_coverage)},
      {"input_sentence_size", std::to_string(options.max_sentences)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(threads)},
      {"self_test_sample_size", "0"},
  };
  DocumentLineIterator lines(files);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(spec, &lines, &model);
  std::cerr.rdbuf(nullptr);
  if (merges) merges->clear();
  bar.clear();
  if (!lines.error().empty()) {
    send_line(fd, "error input " + lines.error());
  } else if (lines.lines() == 0) {
    send_line(fd, "error input the inputs hold no text");
  } else if (!status.ok()) {
    send_line(fd, "error spm " + status.ToString());
  } else {
    send_line(fd, "input " + std::to_string(lines.lines()) + " " + std::to_string(lines.bytes()));
    send_line(fd, "model " + std::to_string(model.size()));
    write_all(fd, model.data(), model.size());
  }
  ::close(fd);
  std::fflush(stderr);
  ::_exit(0);
}

}  // namespace

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options) {
  if (options.vocab_size < kMetaPieces + 2 || options.vocab_size > (1 << 20))
    fail_input("--vocab-size", "vocabulary size out of range",
               std::to_string(kMetaPieces + 2) + ".." + std::to_string(1 << 20) +
                   " (3 special and 256 byte pieces come first)",
               std::to_string(options.vocab_size));
  if (options.out_path.empty()) fail_input("--out", "no output path given");
  {
    // Fail before a possibly long training run, not after it.
    const std::filesystem::path parent = std::filesystem::path(options.out_path).parent_path();
    std::error_code ec;
    if (!parent.empty() && !std::filesystem::is_directory(parent, ec))
      fail_input(options.out_path, "output directory does not exist", "", parent.string());
  }
  const std::vector<TextInput> files = expand_inputs(options.inputs, options.format);
  Timer timer;

  int fds[2];
  if (::pipe(fds) != 0)
    fail_runtime("tokenizer train", std::string("pipe: ") + std::strerror(errno));
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid < 0) fail_runtime("tokenizer train", std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    ::close(fds[0]);
    try {
      child_train(options, files, fds[1]);
    } catch (...) {
      ::_exit(3);
    }
  }
  ::close(fds[1]);

  std::string stream;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    stream.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }

  TokenizerTrainResult result;
  std::string model, fatal_log, error;
  size_t pos = 0;
  while (pos < stream.size()) {
    size_t end = stream.find('\n', pos);
    if (end == std::string::npos) break;
    const std::string line = stream.substr(pos, end - pos);
    pos = end + 1;
    auto rest = [&](size_t skip) { return line.substr(std::min(skip, line.size())); };
    if (line.rfind("alphabet ", 0) == 0) {
      result.alphabet_size = std::stoi(rest(9));
    } else if (line.rfind("input ", 0) == 0) {
      std::sscanf(line.c_str(), "input %lu %lu", &result.sentences, &result.input_bytes);
    } else if (line.rfind("log ", 0) == 0) {
      fatal_log += (fatal_log.empty() ? "" : "; ") + rest(4);
    } else if (line.rfind("error ", 0) == 0) {
      error = rest(6);
    } else if (line.rfind("model ", 0) == 0) {
      const size_t n = std::stoul(rest(6));
      if (stream.size() - pos >= n) model = stream.substr(pos, n);
      pos = stream.size();
    }
  }

  const std::string where = "tokenizer train";
  if (error.rfind("input ", 0) == 0) fail_input(where, error.substr(6));
  if (error.rfind("spm ", 0) == 0) {
    // SentencePiece's own complaints about the settings are input problems,
    // e.g. "Vocabulary size too high (8000). Please set it to a value <= 5966."
    fail_input("--vocab-size " + std::to_string(options.vocab_size),
               "SentencePiece rejected the training run: " + error.substr(4));
  }
  const bool clean_exit = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0;
  if (!clean_exit || model.empty()) {
    if (result.alphabet_size > 0 &&
        options.vocab_size < min_vocab_for_alphabet(result.alphabet_size)) {
      fail_input("--vocab-size",
                 "vocabulary too small for this corpus (3 special + 256 byte pieces + " +
                     std::to_string(result.alphabet_size) + " characters + merges)",
                 "at least " + std::to_string(min_vocab_for_alphabet(result.alphabet_size)),
                 std::to_string(options.vocab_size));
    }
    std::string how = WIFSIGNALED(wstatus) ? "killed by signal " + std::to_string(WTERMSIG(wstatus))
                                           : "exit status " + std::to_string(WEXITSTATUS(wstatus));
    fail_runtime(where, "SentencePiece training failed (" + how + ")" +
                            (fatal_log.empty() ? "" : ": " + fatal_log));
  }

  // Check the model loads before it replaces anything on disk.
  const auto loaded = SentencePieceTokenizer::from_serialized(options.out_path, model);
  result.vocab_size = loaded->vocab_size();
  write_file_atomic(options.out_path, model);
  result.seconds = timer.seconds();
  return result;
}

}  // namespace kiln
