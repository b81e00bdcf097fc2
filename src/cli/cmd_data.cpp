// kiln data prepare | stats | tinystories
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/error.h"
#include "core/progress_bar.h"
#include "data/dataset_prepare.h"
#include "data/tinystories.h"
#include "data/tokenizer_fingerprint.h"
#include "io/atomic_file.h"
#include "io/dataset_manifest.h"
#include "io/token_shards.h"
#include "tokenizer/tokenizer.h"

namespace kiln::cli {
namespace {

// Token-id histogram of one shard (ids are known to be <= max_id).
std::vector<uint64_t> histogram(const TokenSpan& span, int32_t max_id) {
  const size_t bins = static_cast<size_t>(max_id) + 1;
  std::vector<uint64_t> counts(bins, 0);
#pragma omp parallel
  {
    std::vector<uint64_t> local(bins, 0);
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < static_cast<int64_t>(span.count); ++i)
      ++local[static_cast<size_t>(span.at(static_cast<uint64_t>(i)))];
#pragma omp critical
    for (size_t b = 0; b < bins; ++b) counts[b] += local[b];
  }
  return counts;
}

int run_stats(const std::string& path, const std::string& tokenizer_path, int64_t vocab_size,
              const std::string& split, bool json_out, bool verify,
              const std::string& used_ids_out) {
  std::unique_ptr<Tokenizer> tok;
  if (!tokenizer_path.empty()) tok = load_tokenizer(tokenizer_path);
  DatasetOptions opt;
  opt.split = split;
  opt.vocab_size = vocab_size;
  if (tok) opt.tokenizer = fingerprint_of(*tok);
  opt.verify_checksums = verify;
  const TokenDataset ds = TokenDataset::open(path, opt);
  const int32_t bos = ds.manifest() ? ds.manifest()->bos_id : (tok ? tok->bos_id() : 1);

  std::vector<uint64_t> total_counts(static_cast<size_t>(std::max(ds.max_token_id(), 0)) + 1, 0);
  nlohmann::json shards = nlohmann::json::array();
  uint64_t total_docs = 0;
  for (size_t i = 0; i < ds.shards().size(); ++i) {
    const ShardInfo& info = ds.shards()[i];
    const TokenSpan span = ds.shard_tokens(i);
    const std::vector<uint64_t> counts = histogram(span, ds.max_token_id());
    uint64_t distinct = 0;
    int32_t max_id = -1;
    for (size_t id = 0; id < counts.size(); ++id) {
      if (counts[id] == 0) continue;
      ++distinct;
      max_id = static_cast<int32_t>(id);
      total_counts[id] += counts[id];
    }
    const uint64_t bos_count =
        bos >= 0 && static_cast<size_t>(bos) < counts.size() ? counts[bos] : 0;
    const uint64_t docs = info.documents >= 0 ? static_cast<uint64_t>(info.documents) : bos_count;
    total_docs += docs;
    shards.push_back({{"file", info.path},
                      {"split", info.split},
                      {"format", shard_format_name(info.format)},
                      {"dtype", dtype_name(info.dtype)},
                      {"tokens", info.tokens},
                      {"documents", docs},
                      {"distinct_tokens", distinct},
                      {"max_token_id", max_id}});
  }
  std::vector<int32_t> used;
  for (size_t id = 0; id < total_counts.size(); ++id)
    if (total_counts[id] > 0) used.push_back(static_cast<int32_t>(id));
  nlohmann::json report = {{"dataset", path},
                           {"layout", ds.description()},
                           {"split", split},
                           {"vocab_size", ds.vocab_size()},
                           {"tokens", ds.size()},
                           {"documents", total_docs},
                           {"distinct_tokens", used.size()},
                           {"max_token_id", ds.max_token_id()},
                           {"shards", shards}};
  if (!used_ids_out.empty()) {
    // The ids the data uses, for vocabulary compaction (a model trained on this
    // data only needs these rows of the embedding and classifier).
    write_file_atomic(used_ids_out, nlohmann::json(used).dump() + "\n");
  }
  if (json_out) {
    std::printf("%s\n", report.dump(2).c_str());
    return 0;
  }
  std::printf("dataset:   %s (%s, split %s)\n", path.c_str(), ds.description().c_str(),
              split.c_str());
  std::printf("%-28s %-5s %-6s %14s %11s %9s %7s\n", "shard", "split", "dtype", "tokens",
              "documents", "distinct", "max id");
  for (const auto& s : shards) {
    std::string name = s["file"].get<std::string>();
    name = name.substr(name.find_last_of('/') + 1);
    std::printf("%-28s %-5s %-6s %14llu %11llu %9llu %7d\n", name.c_str(),
                s["split"].get<std::string>().c_str(), s["dtype"].get<std::string>().c_str(),
                static_cast<unsigned long long>(s["tokens"].get<uint64_t>()),
                static_cast<unsigned long long>(s["documents"].get<uint64_t>()),
                static_cast<unsigned long long>(s["distinct_tokens"].get<uint64_t>()),
                s["max_token_id"].get<int>());
  }
  std::printf(
      "total:     %lld tokens, %llu documents, %zu distinct tokens of vocab %lld (%.1f%%), max id "
      "%d\n",
      static_cast<long long>(ds.size()), static_cast<unsigned long long>(total_docs), used.size(),
      static_cast<long long>(ds.vocab_size()),
      ds.vocab_size() > 0
          ? 100.0 * static_cast<double>(used.size()) / static_cast<double>(ds.vocab_size())
          : 0.0,
      ds.max_token_id());
  return 0;
}

std::function<int()> setup(CLI::App& app) {
  app.require_subcommand(1);
  auto chosen = std::make_shared<std::function<int()>>();

  // --- prepare
  {
    auto opt = std::make_shared<PrepareOptions>();
    auto format = std::make_shared<std::string>("auto");
    auto quiet = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand(
        "prepare", "Tokenize text or JSON documents into token shards with a manifest");
    sub->add_option("--tokenizer", opt->tokenizer_path, ".model or tokenizer.bin")->required();
    sub->add_option("--input", opt->inputs, "Files or directories")->required();
    sub->add_option("--out", opt->out_dir, "Output directory")->required();
    sub->add_option("--val-fraction", opt->val_fraction,
                    "Share of documents for validation (default 0.01)");
    sub->add_option("--format", *format, "auto, text or jsonl (default auto: by extension)");
    sub->add_flag("--line-per-doc", opt->line_per_doc,
                  "Text: every line is a document (default: blank lines separate)");
    sub->add_option("--threads", opt->threads, "Tokenizer threads (default: all)");
    sub->add_option("--shard-tokens", opt->shard_tokens, "Tokens per shard (default 67108864)");
    sub->add_flag("--quiet", *quiet, "No progress line");
    sub->callback([=] {
      *chosen = [=]() {
        opt->format = parse_text_format(*format);
        opt->progress = !*quiet;
        const PrepareResult r = prepare_dataset(*opt);
        const auto& m = r.manifest;
        const double tokens = static_cast<double>(m.tokens("train") + m.tokens("val"));
        const double secs = std::max(r.seconds, 1e-9);
        std::printf(
            "prepared %s: %llu documents, %s tokens (train %llu, val %llu), %zu shards, %s\n",
            opt->out_dir.c_str(),
            static_cast<unsigned long long>(m.documents("train") + m.documents("val")),
            human_count(tokens).c_str(), static_cast<unsigned long long>(m.tokens("train")),
            static_cast<unsigned long long>(m.tokens("val")), m.shards.size(), dtype_name(m.dtype));
        std::printf("throughput: %s of text in %.2f s = %s/s, %s tokens/s\n",
                    human_bytes(static_cast<double>(r.input_bytes)).c_str(), r.seconds,
                    human_bytes(static_cast<double>(r.input_bytes) / secs).c_str(),
                    human_count(tokens / secs).c_str());
        return 0;
      };
    });
  }

  // --- stats
  {
    auto path = std::make_shared<std::string>();
    auto tokenizer = std::make_shared<std::string>();
    auto vocab = std::make_shared<int64_t>(0);
    auto split = std::make_shared<std::string>("all");
    auto json_out = std::make_shared<bool>(false);
    auto verify = std::make_shared<bool>(false);
    auto used_ids = std::make_shared<std::string>();
    CLI::App* sub = app.add_subcommand(
        "stats", "Tokens, documents and distinct tokens per shard of a dataset (validates it too)");
    sub->add_option("path", *path,
                    "Kiln shard directory, directory of *.bin shards, or one shard file")
        ->required();
    sub->add_option("--tokenizer", *tokenizer, "Check the dataset was made with this tokenizer");
    sub->add_option("--vocab-size", *vocab, "Check every id is below this");
    sub->add_option("--split", *split, "train, val or all (default all)");
    sub->add_flag("--json", *json_out, "Print JSON");
    sub->add_flag("--verify", *verify, "Recompute shard checksums against the manifest");
    sub->add_option("--used-ids", *used_ids,
                    "Write the sorted distinct token ids as a JSON array here");
    sub->callback([=] {
      *chosen = [=]() {
        return run_stats(*path, *tokenizer, *vocab, *split, *json_out, *verify, *used_ids);
      };
    });
  }

  // --- tinystories
  {
    auto opt = std::make_shared<TinyStoriesOptions>();
    auto quiet = std::make_shared<bool>(false);
    CLI::App* sub = app.add_subcommand(
        "tinystories",
        "Download (or take with --archive), verify and unpack TinyStories: the Llama-2-32K "
        "pretokenized shards or the raw JSON stories");
    sub->add_option("--dir", opt->dir, "Where to put it (default data/tinystories)");
    sub->add_option("--archive", opt->archive, "Use this .tar.gz instead of downloading");
    sub->add_option("--kind", opt->kind, "pretok (default for downloads) or raw");
    sub->add_option("--url", opt->url, "Download from this URL instead");
    sub->add_option("--sha256", opt->sha256, "Expected SHA-256 of the archive");
    sub->add_option("--tokenizer", opt->tokenizer,
                    "raw: tokenize the stories into shards with this tokenizer");
    sub->add_option("--val-fraction", opt->val_fraction,
                    "raw + tokenizer: validation share (default 0.01)");
    sub->add_option("--threads", opt->threads, "raw + tokenizer: tokenizer threads");
    sub->add_flag("--force", opt->force, "Redo even if the output exists");
    sub->add_flag("--quiet", *quiet, "No progress line");
    sub->callback([=] {
      *chosen = [=]() {
        opt->progress = !*quiet;
        const TinyStoriesResult r = fetch_tinystories(*opt);
        std::printf("tinystories (%s): %s%s, %llu files\n", r.kind.c_str(), r.data_dir.c_str(),
                    r.already_present ? " (already present)" : "",
                    static_cast<unsigned long long>(r.files));
        if (!r.shards_dir.empty())
          std::printf("shards: %s: %llu documents, %llu tokens\n", r.shards_dir.c_str(),
                      static_cast<unsigned long long>(r.documents),
                      static_cast<unsigned long long>(r.tokens));
        return 0;
      };
    });
  }

  return [chosen]() { return (*chosen)(); };
}

RegisterCommand reg({"data", "Prepare, inspect and fetch token datasets", setup});

}  // namespace
}  // namespace kiln::cli
