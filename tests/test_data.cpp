// Token shards, manifests, `data prepare`, `data stats`:
// round trips through every layout, the split rule, determinism across
// thread counts, and bad input failing with exit code 2, the path, and
// nothing half-written left behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/error.h"
#include "data/dataset_prepare.h"
#include "data/document_reader.h"
#include "data/tokenizer_fingerprint.h"
#include "data/tokenizer_trainer.h"
#include "data_test_helpers.h"
#include "io/atomic_file.h"
#include "io/dataset_manifest.h"
#include "io/token_shards.h"
#include "run_kiln.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::hidden_entries;
using test::read_all;
using test::read_text_file;
using test::run_kiln;
using test::write_text_file;
using test::write_u16;

const std::string kProse = std::string(KILN_SOURCE_DIR) + "/tests/data/kiln_prose.txt";

// The prose file's paragraphs, split independently of document_reader.
std::vector<std::string> prose_paragraphs() {
  const std::string text = read_text_file(kProse);
  std::vector<std::string> docs;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    std::string doc = text.substr(pos, end - pos);
    while (!doc.empty() && doc.back() == '\n') doc.pop_back();
    if (!doc.empty()) docs.push_back(doc);
    pos = end + 2;
  }
  return docs;
}

class DataTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(test::scratch_dir("test_data"));
    model_path_ = new std::string(*root_ + "/kiln400.model");
    TokenizerTrainOptions opt;
    opt.inputs = {kProse};
    opt.vocab_size = 400;
    opt.out_path = *model_path_;
    opt.threads = 2;
    opt.progress = false;
    train_tokenizer(opt);
    tok_ = load_tokenizer(*model_path_).release();
  }
  static void TearDownTestSuite() {
    delete tok_;
    fs::remove_all(*root_);
    delete root_;
    delete model_path_;
  }
  void SetUp() override {
    dir_ = *root_ + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::create_directories(dir_);
  }

  // Prepares the prose file into <dir>/<name> through the library.
  PrepareResult prepare(const std::string& name, double val_fraction = 0.25, int threads = 2,
                        uint64_t shard_tokens = uint64_t{1} << 26) {
    PrepareOptions p;
    p.tokenizer_path = *model_path_;
    p.inputs = {kProse};
    p.out_dir = dir_ + "/" + name;
    p.val_fraction = val_fraction;
    p.threads = threads;
    p.shard_tokens = shard_tokens;
    p.progress = false;
    return prepare_dataset(p);
  }

  static std::string* root_;
  static std::string* model_path_;
  static Tokenizer* tok_;
  std::string dir_;
};

std::string* DataTest::root_ = nullptr;
std::string* DataTest::model_path_ = nullptr;
Tokenizer* DataTest::tok_ = nullptr;

// --- primitives -------------------------------------------------------------------------

TEST(SplitRule, ValFractionIsExactAndSpread) {
  for (double f : {0.0, 0.01, 0.1, 0.25, 0.5, 0.9}) {
    const uint64_t n = 1000;
    uint64_t val = 0, longest_gap = 0, gap = 0;
    for (uint64_t g = 0; g < n; ++g) {
      const bool v = is_val_document(g, f);
      val += v;
      gap = v ? 0 : gap + 1;
      longest_gap = std::max(longest_gap, gap);
    }
    EXPECT_EQ(val, static_cast<uint64_t>(std::floor(static_cast<double>(n) * f + 1e-9))) << f;
    if (f > 0) {
      EXPECT_LE(longest_gap, static_cast<uint64_t>(std::ceil(1.0 / f))) << f;
    }
  }
  EXPECT_EQ(dtype_for_vocab(65536), TokenDType::uint16);
  EXPECT_EQ(dtype_for_vocab(65537), TokenDType::uint32);
}

TEST_F(DataTest, AtomicFileCommitAbortAndStaging) {
  const std::string path = dir_ + "/file.txt";
  {
    AtomicFile f(path);
    f.write("hello world");
    f.write_at(0, "J", 1);
    EXPECT_FALSE(fs::exists(path));  // invisible until commit
    f.commit();
  }
  EXPECT_EQ(read_text_file(path), "Jello world");
  {
    AtomicFile f(path);
    f.write("half written");
  }  // no commit: the old file stays, the temp file is gone
  EXPECT_EQ(read_text_file(path), "Jello world");
  EXPECT_TRUE(hidden_entries(dir_).empty());
  EXPECT_THROW(AtomicFile(dir_ + "/no/such/dir/x"), InputError);

  const std::string final_dir = dir_ + "/ckpt";
  fs::create_directories(final_dir);
  write_text_file(final_dir + "/old.txt", "old");
  {
    StagingDirectory stage(final_dir);
    write_text_file(stage.path() + "/new.txt", "new");
    EXPECT_FALSE(fs::exists(final_dir + "/new.txt"));
    stage.commit();
  }
  EXPECT_EQ(read_text_file(final_dir + "/new.txt"), "new");
  EXPECT_FALSE(fs::exists(final_dir + "/old.txt"));  // replaced as a whole
  {
    StagingDirectory stage(final_dir);
    write_text_file(stage.path() + "/partial.txt", "x");
  }
  EXPECT_FALSE(fs::exists(final_dir + "/partial.txt"));
  EXPECT_TRUE(hidden_entries(dir_).empty());
}

// --- shard layouts ----------------------------------------------------------------------

TEST_F(DataTest, FlatShardsRoundTripAcrossShardBoundaries) {
  std::mt19937 rng(5);
  std::vector<int32_t> all;
  const std::vector<size_t> lengths = {1000, 0, 1, 777};
  const std::string ds_dir = dir_ + "/flat";
  fs::create_directories(ds_dir);
  for (size_t s = 0; s < lengths.size(); ++s) {
    ShardWriter w(ds_dir + "/data0" + std::to_string(s) + ".bin", TokenDType::uint16);
    std::vector<int32_t> ids(lengths[s]);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % 65536);
    // Written in uneven pieces to exercise buffering.
    for (size_t i = 0; i < ids.size(); i += 333)
      w.append(std::span<const int32_t>(ids.data() + i, std::min<size_t>(333, ids.size() - i)));
    const auto summary = w.finish();
    EXPECT_EQ(summary.tokens, lengths[s]);
    EXPECT_EQ(summary.bytes, lengths[s] * 2);
    EXPECT_EQ(fs::file_size(ds_dir + "/data0" + std::to_string(s) + ".bin"), lengths[s] * 2);
    all.insert(all.end(), ids.begin(), ids.end());
  }
  DatasetOptions opt;
  opt.split = "all";
  const TokenDataset ds = TokenDataset::open(ds_dir, opt);
  EXPECT_EQ(ds.description(), "flat uint16 shards");
  ASSERT_EQ(ds.size(), static_cast<int64_t>(all.size()));
  EXPECT_EQ(read_all(ds), all);
  EXPECT_EQ(ds.max_token_id(), *std::max_element(all.begin(), all.end()));
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t off = static_cast<int64_t>(rng() % all.size());
    const int64_t cnt = static_cast<int64_t>(rng() % (all.size() - static_cast<size_t>(off) + 1));
    std::vector<int32_t> got(static_cast<size_t>(cnt));
    ds.read(off, cnt, got.data());
    ASSERT_TRUE(std::equal(got.begin(), got.end(), all.begin() + off)) << off << "+" << cnt;
  }
  std::vector<int32_t> one(2);
  EXPECT_ANY_THROW(ds.read(ds.size() - 1, 2, one.data()));  // wrap-around is the caller's job

  // llama2.c's convention without a manifest: the first shard is val.
  const TokenDataset val = TokenDataset::open(ds_dir, {.split = "val"});
  EXPECT_EQ(val.size(), 1000);
  const TokenDataset train = TokenDataset::open(ds_dir, {.split = "train"});
  EXPECT_EQ(train.size(), 778);
  // A single file is all train.
  EXPECT_EQ(TokenDataset::open(ds_dir + "/data03.bin").size(), 777);
  EXPECT_EQ(TokenDataset::open(ds_dir + "/data03.bin", {.split = "val"}).size(), 0);
}

TEST_F(DataTest, LlmcShardsRoundTripAndNamedSplits) {
  const std::string ds_dir = dir_ + "/llmc";
  fs::create_directories(ds_dir);
  std::vector<int32_t> train_ids, val_ids;
  for (int i = 0; i < 3000; ++i) train_ids.push_back((i * 7919) % 50257);
  for (int i = 0; i < 500; ++i) val_ids.push_back((i * 104729) % 50257);
  for (auto [name, ids] : {std::pair{"tiny_train_000001.bin", &train_ids},
                           std::pair{"tiny_val_000000.bin", &val_ids}}) {
    ShardWriter w(ds_dir + "/" + name, TokenDType::uint16, ShardFormat::llmc);
    w.append(*ids);
    w.finish();
  }
  // The header is llm.c's: magic, version 1, token count, zeros.
  const std::string bytes = read_text_file(ds_dir + "/tiny_val_000000.bin");
  ASSERT_EQ(bytes.size(), kLlmcHeaderBytes + 500 * 2);
  int32_t header[256];
  std::memcpy(header, bytes.data(), sizeof(header));
  EXPECT_EQ(header[0], 20240520);
  EXPECT_EQ(header[1], 1);
  EXPECT_EQ(header[2], 500);
  for (int i = 3; i < 256; ++i) EXPECT_EQ(header[i], 0);

  const ShardInfo info = inspect_shard(ds_dir + "/tiny_val_000000.bin");
  EXPECT_EQ(info.format, ShardFormat::llmc);
  EXPECT_EQ(info.tokens, 500u);
  const TokenDataset train = TokenDataset::open(ds_dir, {.split = "train"});
  const TokenDataset val = TokenDataset::open(ds_dir, {.split = "val"});
  EXPECT_EQ(train.description(), "llm.c shards");
  EXPECT_EQ(read_all(train), train_ids);
  EXPECT_EQ(read_all(val), val_ids);
}

TEST_F(DataTest, Uint32ShardsWithManifest) {
  const std::string ds_dir = dir_ + "/u32";
  fs::create_directories(ds_dir);
  std::vector<int32_t> ids;
  for (int i = 0; i < 1234; ++i) ids.push_back((i * 48271) % 151936);
  ShardWriter w(ds_dir + "/train_0000.bin", TokenDType::uint32);
  w.append(ids);
  const auto s = w.finish();
  EXPECT_EQ(s.bytes, ids.size() * 4);
  DatasetManifest m;
  m.vocab_size = 151936;
  m.dtype = TokenDType::uint32;
  m.shards.push_back({"train_0000.bin", "train", ShardFormat::flat, ids.size(), 1, hex64(s.xxh64)});
  write_manifest(ds_dir, m);
  const TokenDataset ds = TokenDataset::open(ds_dir, {.verify_checksums = true});
  EXPECT_EQ(ds.vocab_size(), 151936);
  EXPECT_EQ(read_all(ds), ids);
  // uint16 cannot hold the id.
  ShardWriter narrow(ds_dir + "/narrow.bin", TokenDType::uint16);
  EXPECT_THROW(narrow.append(std::vector<int32_t>{70000}), RuntimeError);
}

TEST_F(DataTest, BadShardsAreReportedWithPathAndOffset) {
  // Odd byte count.
  const std::string odd = dir_ + "/odd.bin";
  write_text_file(odd, std::string(1001, 'x'));
  std::string e = error_of([&] { TokenDataset::open(odd); });
  EXPECT_NE(e.find(odd + ": odd byte count"), std::string::npos) << e;

  // llm.c header whose count disagrees with the size, and an unknown version.
  std::vector<int32_t> header(256, 0);
  header[0] = 20240520;
  header[1] = 1;
  header[2] = 10;
  std::string file(reinterpret_cast<const char*>(header.data()), 1024);
  file += std::string(8 * 2, '\0');
  const std::string bad_count = dir_ + "/count.bin";
  write_text_file(bad_count, file);
  e = error_of([&] { TokenDataset::open(bad_count); });
  EXPECT_NE(e.find("token count does not match"), std::string::npos) << e;
  EXPECT_NE(e.find("expected 8 tokens, got 10"), std::string::npos) << e;
  header[1] = 7;
  header[2] = 8;
  write_text_file(bad_count, std::string(reinterpret_cast<const char*>(header.data()), 1024) +
                                 std::string(16, '\0'));
  e = error_of([&] { TokenDataset::open(bad_count); });
  EXPECT_NE(e.find("unsupported llm.c shard version"), std::string::npos) << e;

  // Out-of-range id in the second shard, at local token offset 37.
  const std::string ds_dir = dir_ + "/range";
  fs::create_directories(ds_dir);
  std::vector<uint16_t> a(100, 5), b(100, 7);
  b[37] = 300;
  b[90] = 999;
  write_u16(ds_dir + "/a_train.bin", a);
  write_u16(ds_dir + "/b_train.bin", b);
  DatasetOptions opt;
  opt.vocab_size = 300;
  e = error_of([&] { TokenDataset::open(ds_dir, opt); });
  EXPECT_NE(
      e.find(ds_dir + "/b_train.bin: token id out of range at token offset 37 (byte offset 74)"),
      std::string::npos)
      << e;
  EXPECT_NE(e.find("got 300"), std::string::npos) << e;
  opt.vocab_size = 1000;
  EXPECT_EQ(TokenDataset::open(ds_dir, opt).max_token_id(), 999);

  // Missing dataset, empty directory.
  EXPECT_NE(error_of([&] { TokenDataset::open(dir_ + "/nowhere"); }).find("does not exist"),
            std::string::npos);
  fs::create_directories(dir_ + "/empty");
  EXPECT_NE(
      error_of([&] { TokenDataset::open(dir_ + "/empty"); }).find("no manifest.json and no *.bin"),
      std::string::npos);
}

// --- data prepare -------------------------------------------------------------------------

TEST_F(DataTest, PrepareTextMatchesTokenizerAndSplitRule) {
  const PrepareResult r = prepare("ds", 0.25);
  const std::vector<std::string> docs = prose_paragraphs();
  ASSERT_EQ(docs.size(), 16u);
  std::vector<int32_t> want_train, want_val;
  uint64_t val_docs = 0;
  for (size_t g = 0; g < docs.size(); ++g) {
    const std::vector<int32_t> ids = tok_->encode(docs[g], true);
    auto& dst = is_val_document(g, 0.25) ? want_val : want_train;
    val_docs += is_val_document(g, 0.25);
    dst.insert(dst.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(val_docs, 4u);
  const DatasetManifest& m = r.manifest;
  EXPECT_EQ(m.vocab_size, 400);
  EXPECT_EQ(m.dtype, TokenDType::uint16);
  EXPECT_EQ(m.documents("train"), 12u);
  EXPECT_EQ(m.documents("val"), 4u);
  EXPECT_EQ(m.tokens("train"), want_train.size());
  EXPECT_EQ(m.tokens("val"), want_val.size());
  EXPECT_EQ(m.tokenizer["xxh64"], tok_->checksum_hex());

  DatasetOptions opt;
  opt.tokenizer = fingerprint_of(*tok_);
  opt.verify_checksums = true;
  const TokenDataset train = TokenDataset::open(dir_ + "/ds", opt);
  opt.split = "val";
  const TokenDataset val = TokenDataset::open(dir_ + "/ds/manifest.json", opt);
  EXPECT_EQ(train.description(), "kiln manifest");
  EXPECT_EQ(read_all(train), want_train);
  EXPECT_EQ(read_all(val), want_val);
  EXPECT_EQ(train.vocab_size(), 400);
  // Kiln's uint16 shards are plain llama2.c files.
  EXPECT_EQ(inspect_shard(dir_ + "/ds/train_0000.bin").format, ShardFormat::flat);
  EXPECT_TRUE(hidden_entries(dir_ + "/ds").empty());
}

TEST_F(DataTest, PrepareIsDeterministicAcrossThreadsAndKeepsDocumentsWhole) {
  const PrepareResult one = prepare("t1", 0.1, 1, 300);
  const PrepareResult three = prepare("t3", 0.1, 3, 300);
  ASSERT_GT(one.manifest.shards.size(), 3u);  // small shards: several per split
  ASSERT_EQ(one.manifest.shards.size(), three.manifest.shards.size());
  for (size_t i = 0; i < one.manifest.shards.size(); ++i) {
    const auto& s = one.manifest.shards[i];
    EXPECT_EQ(s.xxh64, three.manifest.shards[i].xxh64);
    EXPECT_EQ(read_text_file(dir_ + "/t1/" + s.file), read_text_file(dir_ + "/t3/" + s.file));
    // Each shard starts with BOS and holds as many BOS as documents.
    const std::string bytes = read_text_file(dir_ + "/t1/" + s.file);
    std::vector<uint16_t> ids(bytes.size() / 2);
    std::memcpy(ids.data(), bytes.data(), bytes.size());
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);
    EXPECT_EQ(static_cast<uint64_t>(std::count(ids.begin(), ids.end(), uint16_t{1})), s.documents);
  }
}

TEST_F(DataTest, PrepareJsonLinesArraysAndLinePerDoc) {
  const std::vector<std::string> stories = {
      "Once upon a time, a small cat found a red ball.",
      "Tom and Sue went to the park. They saw a big dog.\nThe dog was happy.",
      "Caf\xC3\xA9 owners sell bread at 7 o'clock.", "The sun was warm and the river was cold.",
      "Lily had a kite. The wind took it high into the sky."};
  const std::string jsonl = dir_ + "/stories.jsonl";
  nlohmann::json j0 = {{"text", stories[0]}, {"id", 1}};
  nlohmann::json j1 = {{"story", stories[1]}, {"source", "GPT-4"}};
  write_text_file(jsonl, j0.dump() + "\n\n" + j1.dump() + "\n");
  // TinyStories' layout: an array of objects with "story" and nested fields.
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 2; i < stories.size(); ++i)
    arr.push_back({{"story", stories[i]},
                   {"instruction", {{"prompt:", "Write a story"}, {"words", {"ball", "sky"}}}},
                   {"summary", "A summary."}});
  const std::string array_path = dir_ + "/data00.json";
  write_text_file(array_path, arr.dump(1));

  PrepareOptions p;
  p.tokenizer_path = *model_path_;
  p.inputs = {jsonl, array_path};
  p.out_dir = dir_ + "/json";
  p.val_fraction = 0.0;
  p.progress = false;
  const PrepareResult r = prepare_dataset(p);
  EXPECT_EQ(r.manifest.documents("train"), stories.size());
  const TokenDataset ds = TokenDataset::open(p.out_dir);
  const std::vector<int32_t> ids = read_all(ds);
  // Split at BOS and decode: the stories come back, in order.
  std::vector<std::string> decoded;
  std::vector<int32_t> cur;
  for (size_t i = 0; i <= ids.size(); ++i) {
    if (i == ids.size() || (ids[i] == 1 && i > 0)) {
      decoded.push_back(tok_->decode(cur));
      cur.clear();
    }
    if (i < ids.size()) cur.push_back(ids[i]);
  }
  EXPECT_EQ(decoded, stories);

  // Text, one document per line.
  const std::string lines = dir_ + "/lines.txt";
  write_text_file(lines, "first line\n\n  second line  \nthird line\n");
  p.inputs = {lines};
  p.line_per_doc = true;
  p.out_dir = dir_ + "/lines";
  EXPECT_EQ(prepare_dataset(p).manifest.documents("train"), 3u);
}

TEST_F(DataTest, ManifestMismatchesAreDetected) {
  prepare("ds", 0.25);
  const std::string ds_dir = dir_ + "/ds";
  // Another tokenizer: a different vocabulary, and the same vocabulary in another file.
  const std::string other = dir_ + "/other.model";
  TokenizerTrainOptions t;
  t.inputs = {kProse};
  t.vocab_size = 350;
  t.out_path = other;
  t.progress = false;
  train_tokenizer(t);
  const auto other_tok = load_tokenizer(other);
  DatasetOptions opt;
  opt.tokenizer = fingerprint_of(*other_tok);
  std::string e = error_of([&] { TokenDataset::open(ds_dir, opt); });
  EXPECT_NE(e.find(ds_dir + "/manifest.json: tokenizer mismatch"), std::string::npos) << e;
  const std::string bin = dir_ + "/kiln400.bin";
  export_llama2c_tokenizer(*tok_, bin);
  const auto bin_tok = load_tokenizer(bin);
  opt.tokenizer = fingerprint_of(*bin_tok);
  e = error_of([&] { TokenDataset::open(ds_dir, opt); });
  EXPECT_NE(e.find("tokenizer mismatch"), std::string::npos) << e;
  // A model vocabulary smaller than the data's.
  e = error_of([&] { TokenDataset::open(ds_dir, {.vocab_size = 300}); });
  EXPECT_NE(e.find("vocabulary mismatch"), std::string::npos) << e;

  // A shard changed in place (same size): caught by the checksum.
  const std::string shard = ds_dir + "/train_0000.bin";
  std::string bytes = read_text_file(shard);
  bytes[10] ^= 0x01;
  write_text_file(shard, bytes);
  EXPECT_NO_THROW(TokenDataset::open(ds_dir));
  e = error_of([&] { TokenDataset::open(ds_dir, {.verify_checksums = true}); });
  EXPECT_NE(e.find(shard + ": manifest mismatch: shard contents changed"), std::string::npos) << e;
  // A shard cut short.
  write_text_file(shard, bytes.substr(0, bytes.size() - 2));
  e = error_of([&] { TokenDataset::open(ds_dir); });
  EXPECT_NE(e.find(shard + ": manifest mismatch: token count differs"), std::string::npos) << e;
  // A shard gone.
  fs::remove(shard);
  e = error_of([&] { TokenDataset::open(ds_dir); });
  EXPECT_NE(e.find(shard + ": shard file does not exist"), std::string::npos) << e;
  // A manifest that is not JSON, or not ours.
  write_text_file(ds_dir + "/manifest.json", "{not json");
  EXPECT_NE(error_of([&] { TokenDataset::open(ds_dir); }).find("not valid JSON"),
            std::string::npos);
  write_text_file(ds_dir + "/manifest.json", R"({"format": "something-else", "version": 1})");
  EXPECT_NE(error_of([&] { TokenDataset::open(ds_dir); }).find("not a Kiln shard manifest"),
            std::string::npos);
}

// --- CLI: prepare, stats ------------------------------------------------------------------

TEST_F(DataTest, CliPrepareAndStats) {
  const std::string out = dir_ + "/ds";
  auto r = run_kiln({"data", "prepare", "--tokenizer", *model_path_, "--input", kProse, "--out",
                     out, "--val-fraction", "0.25", "--threads", "2"},
                    dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("16 documents"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("throughput"), std::string::npos) << r.out;

  const std::string used = dir_ + "/used.json";
  r = run_kiln(
      {"data", "stats", out, "--json", "--tokenizer", *model_path_, "--verify", "--used-ids", used},
      dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json stats = nlohmann::json::parse(r.out);
  const TokenDataset ds = TokenDataset::open(out, {.split = "all"});
  const std::vector<int32_t> ids = read_all(ds);
  const std::set<int32_t> distinct(ids.begin(), ids.end());
  EXPECT_EQ(stats["tokens"], ids.size());
  EXPECT_EQ(stats["documents"], 16);
  EXPECT_EQ(stats["distinct_tokens"], distinct.size());
  EXPECT_EQ(stats["max_token_id"], *distinct.rbegin());
  EXPECT_EQ(stats["shards"].size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(read_text_file(used)).get<std::vector<int32_t>>(),
            std::vector<int32_t>(distinct.begin(), distinct.end()));
  r = run_kiln({"data", "stats", out}, dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("train_0000.bin"), std::string::npos) << r.out;

  // Stats validates too: ids beyond a given vocabulary are bad input.
  r = run_kiln({"data", "stats", out, "--vocab-size", "200"}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("vocabulary mismatch"), std::string::npos) << r.err;
  const std::string flat = dir_ + "/flat.bin";
  write_u16(flat, {1, 5, 9, 250, 7});
  r = run_kiln({"data", "stats", flat, "--vocab-size", "200"}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(flat + ": token id out of range at token offset 3 (byte offset 6)"),
            std::string::npos)
      << r.err;
}

TEST_F(DataTest, CliPrepareBadInputLeavesNothingBehind) {
  const std::string out = dir_ + "/ds";
  // A good dataset first; failing runs must not disturb it.
  ASSERT_EQ(run_kiln({"data", "prepare", "--tokenizer", *model_path_, "--input", kProse, "--out",
                      out, "--quiet"},
                     dir_)
                .code,
            0);
  const std::string manifest_before = read_text_file(out + "/manifest.json");
  const std::string shard_before = read_text_file(out + "/train_0000.bin");

  const std::string empty = dir_ + "/empty.txt";
  write_text_file(empty, "\n\n   \n");
  const std::string garbage = dir_ + "/garbage.model";
  write_text_file(garbage, std::string(300, '\x7f'));
  const std::string bad_json = dir_ + "/bad.jsonl";
  write_text_file(bad_json, "{\"text\": \"a fine story\"}\n{\"story\": 5}\n");
  const std::string no_field = dir_ + "/nofield.json";
  write_text_file(no_field, R"([{"story": "ok"}, {"title": "no text here"}])");

  struct Bad {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Bad> bad = {
      {{"--tokenizer", *model_path_, "--input", empty}, empty + ": the inputs hold no documents"},
      {{"--tokenizer", *model_path_, "--input", dir_ + "/missing.txt"},
       dir_ + "/missing.txt: input does not exist"},
      {{"--tokenizer", garbage, "--input", kProse},
       garbage + ": not a SentencePiece .model or a llama2.c tokenizer.bin"},
      {{"--tokenizer", dir_ + "/nope.model", "--input", kProse},
       dir_ + "/nope.model: cannot open tokenizer"},
      {{"--tokenizer", *model_path_, "--input", kProse, bad_json}, bad_json + ":2: "},
      {{"--tokenizer", *model_path_, "--input", no_field},
       no_field + ": object 1 has no \"text\" or \"story\" string"},
      {{"--tokenizer", *model_path_, "--input", kProse, "--val-fraction", "1.5"},
       "--val-fraction: validation fraction out of range"},
      {{"--tokenizer", *model_path_, "--input", kProse, "--format", "xml"},
       "--format: unknown input format"},
  };
  for (const Bad& b : bad) {
    std::vector<std::string> args = {"data", "prepare", "--out", out, "--quiet"};
    args.insert(args.end(), b.args.begin(), b.args.end());
    const auto r = run_kiln(args, dir_);
    EXPECT_EQ(r.code, 2) << b.message << "\n" << r.err;
    EXPECT_NE(r.err.find("kiln: error: " + b.message), std::string::npos) << r.err;
    EXPECT_EQ(read_text_file(out + "/manifest.json"), manifest_before);
    EXPECT_EQ(read_text_file(out + "/train_0000.bin"), shard_before);
    EXPECT_TRUE(hidden_entries(out).empty());
  }
  // A failing run into a fresh directory leaves no shard and no manifest.
  const std::string fresh = dir_ + "/fresh";
  const auto r = run_kiln(
      {"data", "prepare", "--tokenizer", *model_path_, "--input", kProse, bad_json, "--out", fresh},
      dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(fs::is_empty(fresh)) << "leftovers in " << fresh;
}

}  // namespace
}  // namespace kiln
