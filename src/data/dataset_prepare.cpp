#include "data/dataset_prepare.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/progress_bar.h"
#include "core/timer.h"
#include "io/atomic_file.h"
#include "io/token_shards.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace fs = std::filesystem;

bool is_val_document(uint64_t index, double val_fraction) {
  if (val_fraction <= 0.0) return false;
  const auto before = static_cast<uint64_t>(std::floor(static_cast<double>(index) * val_fraction));
  const auto after =
      static_cast<uint64_t>(std::floor(static_cast<double>(index + 1) * val_fraction));
  return after > before;
}

namespace {

constexpr size_t kBatchBytes = size_t{1} << 20;  // text per tokenizer batch
constexpr size_t kBatchDocs = 4096;

struct TextBatch {
  uint64_t seq = 0;
  std::vector<std::string> docs;
};

struct TokenBatch {
  std::vector<int32_t> tokens;        // all documents, each BOS-prefixed (or EOS-ended)
  std::vector<uint32_t> doc_lengths;  // tokens per document
};

// The reader -> workers -> writer pipeline's shared state. Any thread that
// fails records the first exception and raises `failed`; everyone then stops.
class Pipeline {
 public:
  explicit Pipeline(size_t max_in_flight) : max_in_flight_(max_in_flight) {}

  // Reader: blocks while too many batches are between reading and writing.
  bool push(TextBatch batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    space_.wait(lock, [&] { return failed_ || pushed_ - written_ < max_in_flight_; });
    if (failed_) return false;
    ++pushed_;
    work_.push_back(std::move(batch));
    work_ready_.notify_one();
    return true;
  }
  void close_input() {
    std::lock_guard<std::mutex> lock(mutex_);
    input_closed_ = true;
    work_ready_.notify_all();
    done_ready_.notify_all();
  }
  // Worker: false when there is no more work.
  bool pop(TextBatch& batch) {
    std::unique_lock<std::mutex> lock(mutex_);
    work_ready_.wait(lock, [&] { return failed_ || input_closed_ || !work_.empty(); });
    if (failed_ || work_.empty()) return false;
    batch = std::move(work_.front());
    work_.pop_front();
    return true;
  }
  void complete(uint64_t seq, TokenBatch tokens) {
    std::lock_guard<std::mutex> lock(mutex_);
    done_.emplace(seq, std::move(tokens));
    done_ready_.notify_all();
  }
  // Writer: the batch numbered `seq`, or false at the end of the stream.
  bool next_done(uint64_t seq, TokenBatch& out) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_ready_.wait(
        lock, [&] { return failed_ || done_.count(seq) > 0 || (input_closed_ && seq >= pushed_); });
    if (failed_ || done_.count(seq) == 0) return false;
    out = std::move(done_[seq]);
    done_.erase(seq);
    ++written_;
    space_.notify_all();
    return true;
  }
  void fail(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = error;
    failed_ = true;
    space_.notify_all();
    work_ready_.notify_all();
    done_ready_.notify_all();
  }
  void rethrow_if_failed() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::mutex mutex_;
  std::condition_variable space_, work_ready_, done_ready_;
  std::deque<TextBatch> work_;
  std::map<uint64_t, TokenBatch> done_;
  size_t max_in_flight_;
  uint64_t pushed_ = 0, written_ = 0;
  bool input_closed_ = false, failed_ = false;
  std::exception_ptr error_;
};

// One split's current shard; opens the next one when the current is full.
class SplitWriter {
 public:
  SplitWriter(std::string split, std::string dir, TokenDType dtype, uint64_t shard_tokens)
      : split_(std::move(split)),
        dir_(std::move(dir)),
        dtype_(dtype),
        shard_tokens_(shard_tokens) {}

  void add_document(std::span<const int32_t> tokens) {
    if (!writer_) {
      char name[64];
      std::snprintf(name, sizeof(name), "%s_%04zu.bin", split_.c_str(), shards_.size());
      current_name_ = name;
      writer_ = std::make_unique<ShardWriter>((fs::path(dir_) / name).string(), dtype_);
      documents_ = 0;
    }
    writer_->append(tokens);
    ++documents_;
    if (writer_->tokens() >= shard_tokens_) close();
  }
  void close() {
    if (!writer_) return;
    const ShardWriter::Summary s = writer_->finish();
    writer_.reset();
    ManifestShard m;
    m.file = current_name_;
    m.split = split_;
    m.format = ShardFormat::flat;
    m.tokens = s.tokens;
    m.documents = documents_;
    m.xxh64 = hex64(s.xxh64);
    shards_.push_back(std::move(m));
  }
  const std::vector<ManifestShard>& shards() const { return shards_; }

 private:
  std::string split_, dir_;
  TokenDType dtype_;
  uint64_t shard_tokens_;
  std::unique_ptr<ShardWriter> writer_;
  std::string current_name_;
  uint64_t documents_ = 0;
  std::vector<ManifestShard> shards_;
};

// Removes a directory tree when it goes out of scope (unless released).
struct RemoveOnExit {
  std::string path;
  ~RemoveOnExit() {
    if (path.empty()) return;
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

PrepareResult prepare_dataset(const PrepareOptions& options) {
  if (!(options.val_fraction >= 0.0 && options.val_fraction < 1.0))
    fail_input("--val-fraction", "validation fraction out of range", "0 <= f < 1",
               std::to_string(options.val_fraction));
  if (options.shard_tokens == 0) fail_input("--shard-tokens", "shard size must be positive");
  if (options.out_dir.empty()) fail_input("--out", "no output directory given");
  const auto tokenizer = load_tokenizer(options.tokenizer_path);
  // Documents start with BOS where the tokenizer has one (SentencePiece, Llama-3);
  // otherwise each ends with EOS (Qwen's <|endoftext|> style has no BOS).
  const bool bos_first = tokenizer->bos_id() >= 0;
  if (!bos_first && tokenizer->eos_id() < 0)
    fail_input(options.tokenizer_path, "tokenizer has neither a BOS nor an EOS piece",
               "one of them to separate documents", "none");
  const std::vector<TextInput> files = expand_inputs(options.inputs, options.format);
  uint64_t total_bytes = 0;
  for (const auto& f : files) total_bytes += f.bytes;

  std::error_code ec;
  fs::create_directories(options.out_dir, ec);
  if (ec || !fs::is_directory(options.out_dir))
    fail_input(options.out_dir, "cannot create output directory" + (ec ? ": " + ec.message() : ""));
  RemoveOnExit staging{temporary_sibling((fs::path(options.out_dir) / "prepare").string())};
  if (!fs::create_directory(staging.path, ec) || ec)
    fail_input(options.out_dir, "cannot create staging directory: " + ec.message());

  const TokenDType dtype = dtype_for_vocab(tokenizer->vocab_size());
  const int threads = options.threads > 0
                          ? options.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Timer timer;
  ProgressBar bar("prepare", static_cast<double>(total_bytes), options.progress);
  Pipeline pipeline(static_cast<size_t>(4 * threads));
  std::atomic<uint64_t> bytes_done{0};

  // Reader: files -> batches of documents, in order.
  std::thread reader([&] {
    try {
      TextBatch batch;
      size_t batch_bytes = 0;
      uint64_t seq = 0, files_bytes = 0;
      auto flush = [&]() -> bool {
        if (batch.docs.empty()) return true;
        batch.seq = seq++;
        const bool ok = pipeline.push(std::move(batch));
        batch = TextBatch();
        batch_bytes = 0;
        return ok;
      };
      bool ok = true;
      for (const TextInput& file : files) {
        read_documents(
            file, {options.line_per_doc},
            [&](std::string&& doc) {
              if (!ok) return;
              batch_bytes += doc.size();
              batch.docs.push_back(std::move(doc));
              if (batch_bytes >= kBatchBytes || batch.docs.size() >= kBatchDocs) ok = flush();
            },
            [&](uint64_t in_file) { bytes_done.store(files_bytes + in_file); });
        if (!ok) break;
        files_bytes += file.bytes;
        bytes_done.store(files_bytes);
      }
      if (ok) flush();
    } catch (...) {
      pipeline.fail(std::current_exception());
    }
    pipeline.close_input();
  });

  // Workers: documents -> BOS + ids (or ids + EOS).
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      try {
        TextBatch batch;
        while (pipeline.pop(batch)) {
          TokenBatch out;
          out.doc_lengths.reserve(batch.docs.size());
          for (const std::string& doc : batch.docs) {
            const std::vector<int32_t> ids = tokenizer->encode(doc, bos_first, !bos_first);
            out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
            out.doc_lengths.push_back(static_cast<uint32_t>(ids.size()));
          }
          pipeline.complete(batch.seq, std::move(out));
        }
      } catch (...) {
        pipeline.fail(std::current_exception());
      }
    });
  }

  // Writer (this thread): batches in order -> split shards.
  SplitWriter train("train", staging.path, dtype, options.shard_tokens);
  SplitWriter val("val", staging.path, dtype, options.shard_tokens);
  uint64_t documents = 0, tokens = 0;
  try {
    TokenBatch batch;
    for (uint64_t seq = 0; pipeline.next_done(seq, batch); ++seq) {
      size_t offset = 0;
      for (uint32_t len : batch.doc_lengths) {
        std::span<const int32_t> doc(batch.tokens.data() + offset, len);
        (is_val_document(documents, options.val_fraction) ? val : train).add_document(doc);
        offset += len;
        ++documents;
        tokens += len;
      }
      const double seconds = std::max(timer.seconds(), 1e-9);
      bar.update(static_cast<double>(bytes_done.load()),
                 human_count(static_cast<double>(documents)) + " docs, " +
                     human_count(static_cast<double>(tokens)) + " tokens, " +
                     human_bytes(static_cast<double>(bytes_done.load()) / seconds) + "/s");
    }
  } catch (...) {
    pipeline.fail(std::current_exception());
  }
  reader.join();
  for (auto& w : workers) w.join();
  pipeline.rethrow_if_failed();

  if (documents == 0) {
    std::string names;
    for (const auto& p : options.inputs) names += (names.empty() ? "" : ", ") + p;
    fail_input(names, "the inputs hold no documents (empty or whitespace only)");
  }
  train.close();
  val.close();

  DatasetManifest manifest;
  manifest.vocab_size = tokenizer->vocab_size();
  manifest.dtype = dtype;
  manifest.bos_id = tokenizer->bos_id();
  manifest.bos_per_document = bos_first;
  manifest.eos_id = tokenizer->eos_id();
  manifest.eos_per_document = !bos_first;
  manifest.tokenizer = {
      {"path", options.tokenizer_path},     {"format", tokenizer->format()},
      {"xxh64", tokenizer->checksum_hex()}, {"vocab_size", tokenizer->vocab_size()},
      {"bos_id", tokenizer->bos_id()},      {"eos_id", tokenizer->eos_id()}};
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& f : files)
    inputs.push_back(
        {{"path", f.path}, {"format", text_format_name(f.format)}, {"bytes", f.bytes}});
  manifest.source = {{"tool", "kiln data prepare"},
                     {"inputs", inputs},
                     {"line_per_doc", options.line_per_doc},
                     {"val_fraction", options.val_fraction},
                     {"val_rule", "document g is val when floor((g+1)*f) > floor(g*f)"},
                     {"shard_tokens", options.shard_tokens}};
  for (const auto& s : train.shards()) manifest.shards.push_back(s);
  for (const auto& s : val.shards()) manifest.shards.push_back(s);

  // Publish: drop the old manifest first (the directory is then visibly
  // incomplete rather than inconsistent), move the new shards in, delete the
  // old dataset's other shards, write the new manifest last.
  const fs::path out(options.out_dir);
  std::vector<std::string> old_files;
  if (fs::exists(out / kManifestName)) {
    try {
      for (const auto& s : read_manifest((out / kManifestName).string()).shards)
        old_files.push_back(s.file);
    } catch (const InputError&) {
      // An unreadable old manifest only means there is nothing to clean up.
    }
    fs::remove(out / kManifestName, ec);
  }
  for (const auto& s : manifest.shards) fs::rename(fs::path(staging.path) / s.file, out / s.file);
  for (const auto& old : old_files) {
    const bool reused = std::any_of(manifest.shards.begin(), manifest.shards.end(),
                                    [&](const ManifestShard& s) { return s.file == old; });
    if (!reused) fs::remove(out / old, ec);
  }
  fsync_dir(options.out_dir);
  write_manifest(options.out_dir, manifest);

  PrepareResult result;
  result.manifest = std::move(manifest);
  result.input_bytes = total_bytes;
  result.seconds = timer.seconds();
  bar.clear();
  return result;
}

}  // namespace kiln
