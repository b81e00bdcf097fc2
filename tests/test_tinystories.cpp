// `kiln data tinystories`, offline: the tests build small archives in the
// layouts of the real ones (Llama-2-32K pretokenized shards, raw JSON stories)
// and check extraction, validation and the manifest; broken archives must fail
// with exit code 2 and leave nothing behind. Nothing is ever downloaded.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "data/tokenizer_fingerprint.h"
#include "data/tokenizer_trainer.h"
#include "data_test_helpers.h"
#include "io/dataset_manifest.h"
#include "io/token_shards.h"
#include "run_kiln.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using test::hidden_entries;
using test::read_all;
using test::run_kiln;
using test::write_text_file;
using test::write_u16;

const std::string kProse = std::string(KILN_SOURCE_DIR) + "/tests/data/kiln_prose.txt";

class TinyStoriesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new std::string(test::scratch_dir("test_tinystories"));
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

  // tar czf <archive> -C <dir> <members...>
  static void make_archive(const std::string& archive, const std::string& dir,
                           const std::string& members) {
    const std::string cmd =
        "tar czf " + test::shell_quote(archive) + " -C " + test::shell_quote(dir) + " " + members;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }

  static std::string* root_;
  static std::string* model_path_;
  static Tokenizer* tok_;
  std::string dir_;
};

std::string* TinyStoriesTest::root_ = nullptr;
std::string* TinyStoriesTest::model_path_ = nullptr;
Tokenizer* TinyStoriesTest::tok_ = nullptr;

TEST_F(TinyStoriesTest, PretokenizedArchive) {
  // The layout of the Llama-2-32K archive: dataNN.bin flat uint16 shards,
  // a BOS (1) before every story.
  const std::string src = dir_ + "/src/tok32000";
  fs::create_directories(src);
  std::mt19937 rng(11);
  std::vector<std::vector<uint16_t>> shards(3);
  uint64_t bos_total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    for (int i = 0; i < 400 + static_cast<int>(s) * 50; ++i) {
      const bool bos = i % 40 == 0;
      shards[s].push_back(bos ? 1 : static_cast<uint16_t>(3 + rng() % 31997));
      bos_total += bos;
    }
    write_u16(src + "/data0" + std::to_string(s) + ".bin", shards[s]);
  }
  const std::string archive = dir_ + "/TinyStories_tok32000.tar.gz";
  make_archive(archive, dir_ + "/src", "tok32000");
  const std::string out = dir_ + "/ts";

  auto r = run_kiln({"data", "tinystories", "--archive", archive, "--dir", out}, dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("tinystories (pretok)"), std::string::npos) << r.out;
  const TokenDataset val = TokenDataset::open(
      out + "/tok32000", {.split = "val", .vocab_size = 32000, .verify_checksums = true});
  const TokenDataset train = TokenDataset::open(out + "/tok32000", {.split = "train"});
  EXPECT_EQ(val.description(), "kiln manifest");
  EXPECT_EQ(read_all(val), std::vector<int32_t>(shards[0].begin(), shards[0].end()));
  std::vector<int32_t> rest(shards[1].begin(), shards[1].end());
  rest.insert(rest.end(), shards[2].begin(), shards[2].end());
  EXPECT_EQ(read_all(train), rest);
  const DatasetManifest m = read_manifest(out + "/tok32000/manifest.json");
  EXPECT_EQ(m.vocab_size, 32000);
  EXPECT_EQ(m.documents("train") + m.documents("val"), bos_total);
  EXPECT_TRUE(hidden_entries(out).empty());

  // Second run: already there, nothing downloaded or extracted.
  r = run_kiln({"data", "tinystories", "--dir", out}, dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("already present"), std::string::npos) << r.out;
}

TEST_F(TinyStoriesTest, RawArchiveIsTokenizedIntoShards) {
  const std::string src = dir_ + "/src";
  fs::create_directories(src);
  const std::vector<std::string> stories = {
      "One day, a little bird sat on a tree.", "The boy ran home. He was very tired.",
      "Mia liked to paint the sky blue.", "The old man gave the dog a bone."};
  nlohmann::json a = nlohmann::json::array(), b = nlohmann::json::array();
  for (size_t i = 0; i < stories.size(); ++i)
    (i < 3 ? a : b)
        .push_back({{"story", stories[i]},
                    {"instruction", {{"features", {"Dialogue"}}}},
                    {"source", "test"}});
  write_text_file(src + "/data00.json", a.dump());
  write_text_file(src + "/data01.json", b.dump());
  const std::string archive = dir_ + "/TinyStories_all_data.tar.gz";
  make_archive(archive, src, "data00.json data01.json");
  const std::string out = dir_ + "/ts";

  const auto r = run_kiln({"data", "tinystories", "--archive", archive, "--dir", out, "--tokenizer",
                           *model_path_, "--val-fraction", "0", "--quiet"},
                          dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out + "/TinyStories_all_data/data00.json"));
  EXPECT_TRUE(fs::exists(out + "/TinyStories_all_data/data01.json"));
  const TokenDataset ds = TokenDataset::open(out + "/tok400", {.tokenizer = fingerprint_of(*tok_)});
  std::vector<int32_t> want;
  for (const auto& s : stories) {
    const auto ids = tok_->encode(s, true);
    want.insert(want.end(), ids.begin(), ids.end());
  }
  EXPECT_EQ(read_all(ds), want);
  EXPECT_TRUE(hidden_entries(out).empty());
}

TEST_F(TinyStoriesTest, BadArchivesExitTwoAndLeaveNothing) {
  const std::string out = dir_ + "/ts";
  // Not gzip at all (e.g. an HTML error page saved as the archive).
  const std::string html = dir_ + "/page.tar.gz";
  write_text_file(html, "<html>Invalid username or password.</html>");
  auto r = run_kiln({"data", "tinystories", "--archive", html, "--dir", out}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(html + ": not a gzip archive"), std::string::npos) << r.err;
  // Missing archive.
  r = run_kiln({"data", "tinystories", "--archive", dir_ + "/nothing.tar.gz", "--dir", out}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nothing.tar.gz: archive does not exist"), std::string::npos) << r.err;
  // Gzip, but not a tar.
  const std::string plain = dir_ + "/plain.txt";
  write_text_file(plain, "just text");
  ASSERT_EQ(std::system(("gzip -kf " + test::shell_quote(plain)).c_str()), 0);
  r = run_kiln({"data", "tinystories", "--archive", plain + ".gz", "--dir", out}, dir_);
  EXPECT_EQ(r.code, 2) << r.err;
  // A tar without the layout.
  fs::create_directories(dir_ + "/src1");
  write_text_file(dir_ + "/src1/readme.txt", "hello");
  make_archive(dir_ + "/other.tar.gz", dir_ + "/src1", "readme.txt");
  r = run_kiln({"data", "tinystories", "--archive", dir_ + "/other.tar.gz", "--dir", out}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("does not have the TinyStories layout"), std::string::npos) << r.err;
  // A shard with an odd byte count, and one with an id >= 32000.
  fs::create_directories(dir_ + "/src2");
  write_u16(dir_ + "/src2/data00.bin", {1, 2, 3});
  write_text_file(dir_ + "/src2/data01.bin", std::string(7, '\1'));
  make_archive(dir_ + "/odd.tar.gz", dir_ + "/src2", "data00.bin data01.bin");
  r = run_kiln({"data", "tinystories", "--archive", dir_ + "/odd.tar.gz", "--dir", out}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("data01.bin: odd byte count"), std::string::npos) << r.err;
  fs::create_directories(dir_ + "/src3");
  write_u16(dir_ + "/src3/data00.bin", {1, 2, 3, 32000});
  make_archive(dir_ + "/range.tar.gz", dir_ + "/src3", "data00.bin");
  r = run_kiln({"data", "tinystories", "--archive", dir_ + "/range.tar.gz", "--dir", out}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("token offset 3"), std::string::npos) << r.err;
  // A checksum that does not match.
  write_u16(dir_ + "/src3/data00.bin", {1, 2, 3});
  make_archive(dir_ + "/good.tar.gz", dir_ + "/src3", "data00.bin");
  r = run_kiln({"data", "tinystories", "--archive", dir_ + "/good.tar.gz", "--dir", out, "--sha256",
                std::string(64, '0')},
               dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("checksum mismatch"), std::string::npos) << r.err;

  EXPECT_FALSE(fs::exists(out + "/tok32000"));
  EXPECT_TRUE(hidden_entries(out).empty());
}

}  // namespace
}  // namespace kiln
