// Tokenizers: Kiln's ids must be SentencePiece's ids, for the .model (which Kiln
// encodes through the library) and for the exported llama2.c tokenizer.bin
// (Kiln's own BPE). The reference is SentencePiece's own command-line encoder,
// `spm_encode` (Debian `sentencepiece`), run at test time -- not the library the
// .model path itself calls. Decode must be SentencePiece's decode; export must be
// llama2.c's layout; bad files must fail with exit code 2 and the path.
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer_trainer.h"
#include "run_kiln.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
using test::read_text_file;
using test::run_kiln;
using test::write_text_file;

const std::string kProse = std::string(KILN_SOURCE_DIR) + "/tests/data/kiln_prose.txt";

// Inputs chosen to reach every branch of normalisation, merging, byte fallback
// and decoding. Each is paired with what decode(encode(x)) must give: x itself
// for valid UTF-8, and x with each malformed byte replaced by U+FFFD otherwise
// (SentencePiece's normaliser does that replacement before encoding).
struct Case {
  std::string text;
  std::string round_trip;
};

std::vector<Case> cases() {
  const std::string fffd = "\xEF\xBF\xBD";
  std::vector<Case> c = {
      {"", ""},
      {"a", "a"},
      // runs of one letter: equal-score pairs side by side, where the leftmost must merge first
      {"eee llll ooo sss ttt rrrrr nnn eeeee", "eee llll ooo sss ttt rrrrr nnn eeeee"},
      {"The model writes short stories.", "The model writes short stories."},
      {"Hello, Kiln!  Two  spaces, then\ttab and\nnewline.",
       "Hello, Kiln!  Two  spaces, then\ttab and\nnewline."},
      {" leading space", " leading space"},
      {"   three leading", "   three leading"},
      {"trailing   ", "trailing   "},
      {" ", " "},
      {"    ", "    "},
      {"Numbers: 2024, 19.99, 1000000 and 3.14159.", "Numbers: 2024, 19.99, 1000000 and 3.14159."},
      {"Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m",
       "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m"},
      // combining marks: e + U+0301, a + U+0308 + U+0323
      {"cafe\xCC\x81 a\xCC\x88\xCC\xA3", "cafe\xCC\x81 a\xCC\x88\xCC\xA3"},
      // CJK
      {"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xA8\xE4\xB8\xAD\xE6\x96\x87 "
       "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4",
       "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xA8\xE4\xB8\xAD\xE6\x96\x87 "
       "\xED\x95\x9C\xEA\xB5\xAD\xEC\x96\xB4"},
      // emoji, a ZWJ family, a flag, a skin tone
      {"ok \xF0\x9F\x99\x82 "
       "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
       "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
       "ok \xF0\x9F\x99\x82 "
       "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 "
       "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"},
      // control characters, DEL, a NUL in the middle, CR LF
      {std::string("bell\x07 esc\x1B[0m del\x7F nul", 22) + std::string("\0z\r\n", 4),
       std::string("bell\x07 esc\x1B[0m del\x7F nul", 22) + std::string("\0z\r\n", 4)},
      // text that looks like special or byte pieces must stay text
      {"<s> </s> <unk> <0x41> \xE2\x96\x81 word", "<s> </s> <unk> <0x41>   word"},
      // malformed UTF-8: a lone 0xFF, a stray continuation byte, a cut 3-byte
      // sequence, an overlong '/', a UTF-16 surrogate, a code point past U+10FFFF
      {"ab\xFF"
       "cd",
       "ab" + fffd + "cd"},
      {"x\x80y", "x" + fffd + "y"},
      {"cut \xE2\x82", "cut " + fffd + fffd},
      {"over\xC0\xAFlong", "over" + fffd + fffd + "long"},
      {"sur\xED\xA0\x80rogate", "sur" + fffd + fffd + fffd + "rogate"},
      {"big\xF4\x90\x80\x80!", "big" + fffd + fffd + fffd + fffd + "!"},
  };
  // The literal "▁" (U+2581) in the text above decodes to a space, as in SentencePiece.
  c.push_back({read_text_file(kProse), read_text_file(kProse)});
  return c;
}

class TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(test::scratch_dir("test_tokenizer"));
    model_path_ = new std::string(*dir_ + "/kiln400.model");
    bin_path_ = new std::string(*dir_ + "/kiln400.bin");
    TokenizerTrainOptions opt;
    opt.inputs = {kProse};
    opt.vocab_size = 400;
    opt.out_path = *model_path_;
    opt.threads = 2;
    opt.progress = false;
    train_tokenizer(opt);
    sp_ = new sentencepiece::SentencePieceProcessor();
    ASSERT_TRUE(sp_->Load(*model_path_).ok());
    model_ = load_tokenizer(*model_path_).release();
    export_llama2c_tokenizer(*model_, *bin_path_);
    bin_ = load_tokenizer(*bin_path_).release();
  }
  static void TearDownTestSuite() {
    delete bin_;
    delete model_;
    delete sp_;
    fs::remove_all(*dir_);
    delete dir_;
    delete model_path_;
    delete bin_path_;
  }

  static std::vector<int32_t> sp_encode(const std::string& text) {
    std::vector<int> ids;
    EXPECT_TRUE(sp_->Encode(text, &ids).ok());
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  static std::string sp_decode(const std::vector<int32_t>& ids) {
    std::string text;
    EXPECT_TRUE(sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &text).ok());
    return text;
  }

  static std::string* dir_;
  static std::string* model_path_;
  static std::string* bin_path_;
  static sentencepiece::SentencePieceProcessor* sp_;
  static Tokenizer* model_;
  static Tokenizer* bin_;
};

std::string* TokenizerTest::dir_ = nullptr;
std::string* TokenizerTest::model_path_ = nullptr;
std::string* TokenizerTest::bin_path_ = nullptr;
sentencepiece::SentencePieceProcessor* TokenizerTest::sp_ = nullptr;
Tokenizer* TokenizerTest::model_ = nullptr;
Tokenizer* TokenizerTest::bin_ = nullptr;

TEST_F(TokenizerTest, TrainedWithLlamaSettings) {
  EXPECT_EQ(model_->format(), "sentencepiece");
  EXPECT_EQ(model_->vocab_size(), 400);
  EXPECT_EQ(model_->unk_id(), 0);
  EXPECT_EQ(model_->bos_id(), 1);
  EXPECT_EQ(model_->eos_id(), 2);
  EXPECT_EQ(sp_->pad_id(), -1);
  EXPECT_TRUE(model_->has_byte_fallback());
  for (int b = 0; b < 256; ++b) EXPECT_EQ(byte_piece_value(model_->piece(3 + b)), b);
  // Digits are split: no normal piece holds two digits.
  for (int32_t id = 0; id < model_->vocab_size(); ++id) {
    if (model_->kind(id) != PieceKind::normal) continue;
    int digits = 0;
    for (char c : model_->piece(id)) digits += c >= '0' && c <= '9';
    EXPECT_LE(digits, 1) << model_->piece(id);
  }
  // Identity normalisation: NFKC would fold the fullwidth 'Ａ' (U+FF21) into 'A'.
  EXPECT_EQ(model_->decode(model_->encode("\xEF\xBC\xA1")), "\xEF\xBC\xA1");
}

// spm_encode reads one sentence per line, so the cases are compared line by line
// (a case with newlines in it becomes several lines).
std::vector<std::string> case_lines() {
  std::vector<std::string> lines;
  for (const Case& c : cases()) {
    size_t start = 0;
    for (size_t nl; (nl = c.text.find('\n', start)) != std::string::npos; start = nl + 1)
      lines.push_back(c.text.substr(start, nl - start));
    lines.push_back(c.text.substr(start));
  }
  return lines;
}

// The ids `spm_encode --output_format=id` prints for each line of `lines`.
std::vector<std::vector<int32_t>> spm_encode_cli(const std::string& model,
                                                 const std::vector<std::string>& lines,
                                                 const std::string& dir) {
  std::string input;
  for (const std::string& line : lines) input += line + "\n";
  write_text_file(dir + "/spm_in.txt", input);
  const std::string cmd = "spm_encode --model=" + test::shell_quote(model) +
                          " --output_format=id < " + test::shell_quote(dir + "/spm_in.txt") +
                          " > " + test::shell_quote(dir + "/spm_out.txt");
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd << " (Debian package sentencepiece)";
  std::vector<std::vector<int32_t>> ids;
  std::istringstream out(read_text_file(dir + "/spm_out.txt"));
  for (std::string line; std::getline(out, line);) {
    std::istringstream words(line);
    std::vector<int32_t> row;
    for (int32_t id; words >> id;) row.push_back(id);
    ids.push_back(row);
  }
  EXPECT_EQ(ids.size(), lines.size()) << "spm_encode printed a different number of lines";
  return ids;
}

// Both formats: the .model (through the library) and the exported tokenizer.bin
// (Kiln's own BPE) against the ids spm_encode prints.
TEST_F(TokenizerTest, EncodingEqualsSpmEncode) {
  const std::vector<std::string> lines = case_lines();
  const auto want = spm_encode_cli(*model_path_, lines, *dir_);
  ASSERT_EQ(want.size(), lines.size());
  for (const Tokenizer* tok : {model_, bin_}) {
    for (size_t i = 0; i < lines.size(); ++i)
      EXPECT_EQ(tok->encode(lines[i]), want[i]) << tok->format() << ", text: " << lines[i];
  }
}

TEST_F(TokenizerTest, Llama2cBinEncodingEqualsSentencePieceOnRandomText) {
  // Random strings over an alphabet mixing frequent letters (many merges),
  // spaces, digits, accents, CJK, emoji and malformed bytes.
  const std::vector<std::string> atoms = {"e",
                                          "t",
                                          "h",
                                          "a",
                                          "n",
                                          "o",
                                          "r",
                                          "s",
                                          "i",
                                          "l",
                                          "d",
                                          " ",
                                          " ",
                                          " ",
                                          "the",
                                          "ing",
                                          "1",
                                          "7",
                                          ".",
                                          ",",
                                          "\n",
                                          "\t",
                                          "\xC3\xA9",
                                          "\xE6\x97\xA5",
                                          "\xF0\x9F\x99\x82",
                                          "\xFF",
                                          "\xE2\x82",
                                          "\xCC\x81",
                                          "\xE2\x96\x81",
                                          "\x01"};
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 400; ++trial) {
    std::string text;
    const int n = static_cast<int>(rng() % 60);
    for (int i = 0; i < n; ++i) text += atoms[rng() % atoms.size()];
    ASSERT_EQ(bin_->encode(text), sp_encode(text)) << "text: " << text;
  }
}

TEST_F(TokenizerTest, RoundTrip) {
  for (const Case& c : cases()) {
    for (const Tokenizer* tok : {model_, bin_}) {
      const std::vector<int32_t> ids = tok->encode(c.text);
      EXPECT_EQ(tok->decode(ids), c.round_trip) << tok->format() << " text: " << c.text;
      // With BOS and EOS the text is the same: control pieces are invisible.
      EXPECT_EQ(tok->decode(tok->encode(c.text, true, true)), c.round_trip) << tok->format();
    }
  }
}

TEST_F(TokenizerTest, DecodeEqualsSentencePieceOnRandomIds) {
  // Arbitrary id sequences: control ids anywhere, unk, byte runs forming valid
  // and malformed UTF-8, pieces with and without a leading "▁".
  std::mt19937 rng(99);
  for (int trial = 0; trial < 400; ++trial) {
    std::vector<int32_t> ids;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
      const int pick = static_cast<int>(rng() % 4);
      if (pick == 0)
        ids.push_back(static_cast<int32_t>(rng() % 3));  // unk / bos / eos
      else if (pick == 1)
        ids.push_back(static_cast<int32_t>(3 + rng() % 256));  // byte
      else
        ids.push_back(static_cast<int32_t>(259 + rng() % 141));  // normal
    }
    const std::string want = sp_decode(ids);
    EXPECT_EQ(model_->decode(ids), want);
    ASSERT_EQ(bin_->decode(ids), want) << "trial " << trial;
  }
}

TEST_F(TokenizerTest, StreamingDecodeJoinsToTheText) {
  for (const Case& c : cases()) {
    if (c.text != c.round_trip) continue;  // malformed input is not reproduced byte for byte
    for (const Tokenizer* tok : {model_, bin_}) {
      const std::vector<int32_t> ids = tok->encode(c.text, /*bos=*/true);
      std::string joined;
      int32_t prev = -1;
      for (int32_t id : ids) {
        joined += tok->decode_piece(prev, id);
        prev = id;
      }
      EXPECT_EQ(joined, c.text) << tok->format();
    }
  }
  // A byte piece streams as its raw byte, so a character split across byte
  // pieces is reassembled by whoever prints them.
  const std::vector<int32_t> ids = bin_->encode("\xF0\x9F\x99\x82");
  std::string raw;
  for (size_t i = 1; i < ids.size(); ++i) raw += bin_->decode_piece(ids[i - 1], ids[i]);
  EXPECT_EQ(raw, "\xF0\x9F\x99\x82");
}

TEST_F(TokenizerTest, ExportHasLlama2cLayout) {
  const std::string bytes = read_text_file(*bin_path_);
  size_t pos = 0;
  auto take_i32 = [&]() {
    int32_t v;
    std::memcpy(&v, bytes.data() + pos, 4);
    pos += 4;
    return v;
  };
  auto take_f32 = [&]() {
    float v;
    std::memcpy(&v, bytes.data() + pos, 4);
    pos += 4;
    return v;
  };
  const int32_t max_len = take_i32();
  int32_t longest = 0;
  for (int id = 0; id < sp_->GetPieceSize(); ++id) {
    ASSERT_LE(pos + 8, bytes.size());
    const float score = take_f32();
    const int32_t len = take_i32();
    ASSERT_LE(pos + static_cast<size_t>(len), bytes.size());
    const std::string token = bytes.substr(pos, static_cast<size_t>(len));
    pos += static_cast<size_t>(len);
    longest = std::max(longest, len);
    EXPECT_EQ(score, sp_->GetScore(id)) << id;
    // What llama2.c's tokenizer.py writes: BOS/EOS wrapped in newlines,
    // "▁" as a space, everything else (byte pieces included) verbatim.
    std::string want = sp_->IdToPiece(id);
    if (id == 1) want = "\n<s>\n";
    if (id == 2) want = "\n</s>\n";
    std::string spaced;
    for (size_t i = 0; i < want.size(); ++i) {
      if (want.compare(i, 3, "\xE2\x96\x81") == 0) {
        spaced.push_back(' ');
        i += 2;
      } else {
        spaced.push_back(want[i]);
      }
    }
    want = spaced;
    EXPECT_EQ(token, want) << id;
  }
  EXPECT_EQ(pos, bytes.size());
  EXPECT_EQ(max_len, longest);

  // Loading and exporting again reproduces the file byte for byte.
  const std::string again = *dir_ + "/again.bin";
  export_llama2c_tokenizer(*bin_, again);
  EXPECT_EQ(read_text_file(again), bytes);
  EXPECT_EQ(bin_->format(), "llama2c");
  EXPECT_EQ(bin_->vocab_size(), model_->vocab_size());
  for (int32_t id = 0; id < bin_->vocab_size(); ++id) {
    EXPECT_EQ(bin_->piece(id), model_->piece(id));
    EXPECT_EQ(bin_->kind(id), model_->kind(id));
  }
}

TEST_F(TokenizerTest, CliEncodeDecodeMatchesSpmEncode) {
  const std::string text = "The baker opened the shop at 6:30, caf\xC3\xA9 \xF0\x9F\x99\x82";
  const auto reference = spm_encode_cli(*model_path_, {text}, *dir_);
  ASSERT_EQ(reference.size(), 1u);
  for (const std::string* path : {model_path_, bin_path_}) {
    const auto r = run_kiln({"tokenizer", "encode", "--tokenizer", *path, "--text", text}, *dir_);
    ASSERT_EQ(r.code, 0) << r.err;
    std::string want;
    for (int32_t id : reference[0]) {
      if (!want.empty()) want.push_back(' ');
      want.append(std::to_string(id));
    }
    EXPECT_EQ(r.out, want + "\n");
    const auto with_bos = run_kiln(
        {"tokenizer", "encode", "--tokenizer", *path, "--text", text, "--bos", "--eos"}, *dir_);
    EXPECT_EQ(with_bos.out, "1 " + want + " 2\n");
    const auto d =
        run_kiln({"tokenizer", "decode", "--tokenizer", *path, "--ids", "1 " + want + " 2"}, *dir_);
    ASSERT_EQ(d.code, 0) << d.err;
    EXPECT_EQ(d.out, text + "\n");
  }
}

TEST_F(TokenizerTest, CliExportWritesTheSameFile) {
  const std::string out = *dir_ + "/cli.bin";
  const auto r =
      run_kiln({"tokenizer", "export", "--tokenizer", *model_path_, "--out", out}, *dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_text_file(out), read_text_file(*bin_path_));
}

// --- bad input ---------------------------------------------------------------------

TEST_F(TokenizerTest, BadTokenizerFilesExitTwoNamingThePath) {
  std::mt19937 rng(7);
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  garbage[0] = 'G';  // neither a plausible header nor a protobuf tag
  const std::string garbage_path = *dir_ + "/garbage.model";
  write_text_file(garbage_path, garbage);
  // A protobuf-looking start that is not a SentencePiece model.
  const std::string proto_path = *dir_ + "/fake_proto.model";
  write_text_file(proto_path, std::string("\x0A\x05hello\x12\xFF\xFF", 10));
  const std::string empty_path = *dir_ + "/empty.model";
  write_text_file(empty_path, "");
  const std::string bin = read_text_file(*bin_path_);
  const std::string cut_path = *dir_ + "/cut.bin";
  write_text_file(cut_path, bin.substr(0, bin.size() / 2 + 3));
  const std::string missing_path = *dir_ + "/missing.model";

  for (const std::string& path : {garbage_path, proto_path, empty_path, cut_path, missing_path}) {
    const auto r = run_kiln({"tokenizer", "encode", "--tokenizer", path, "--text", "hello"}, *dir_);
    EXPECT_EQ(r.code, 2) << path << ": " << r.err;
    EXPECT_NE(r.err.find("kiln: error: " + path + ": "), std::string::npos) << r.err;
    EXPECT_THROW(load_tokenizer(path), InputError) << path;
  }
  EXPECT_NE(run_kiln({"tokenizer", "info", "--tokenizer", empty_path}, *dir_).err.find("empty"),
            std::string::npos);
  const auto cut = run_kiln({"tokenizer", "info", "--tokenizer", cut_path}, *dir_);
  // Where the cut lands decides which of the two truncation messages applies.
  EXPECT_TRUE(cut.err.find("(as tokenizer.bin: truncated entry for token") != std::string::npos ||
              cut.err.find("runs past the end of the file") != std::string::npos)
      << cut.err;
}

TEST_F(TokenizerTest, OutOfRangeIdsExitTwo) {
  for (const std::string* path : {model_path_, bin_path_}) {
    const auto r =
        run_kiln({"tokenizer", "decode", "--tokenizer", *path, "--ids", "1 50 400"}, *dir_);
    EXPECT_EQ(r.code, 2);
    EXPECT_NE(r.err.find(*path), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("out of range"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("got 400"), std::string::npos) << r.err;
    const auto neg = run_kiln({"tokenizer", "decode", "--tokenizer", *path, "--ids", "-1"}, *dir_);
    EXPECT_EQ(neg.code, 2);
    const auto word =
        run_kiln({"tokenizer", "decode", "--tokenizer", *path, "--ids", "1 two"}, *dir_);
    EXPECT_EQ(word.code, 2);
    EXPECT_NE(word.err.find("'two'"), std::string::npos) << word.err;
  }
  const std::vector<int32_t> bad = {5, 400};
  EXPECT_THROW(model_->decode(bad), InputError);
  EXPECT_THROW(bin_->decode(bad), InputError);
  EXPECT_THROW(bin_->decode_piece(-1, -3), InputError);
}

TEST_F(TokenizerTest, TrainerRejectsBadInputWithoutWritingOutput) {
  const std::string out = *dir_ + "/never.model";
  // Missing input.
  auto r = run_kiln(
      {"tokenizer", "train", "--input", *dir_ + "/nope.txt", "--vocab-size", "400", "--out", out},
      *dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("nope.txt: input does not exist"), std::string::npos) << r.err;
  // Empty input.
  const std::string empty = *dir_ + "/empty.txt";
  write_text_file(empty, "\n \n\t\n");
  r = run_kiln(
      {"tokenizer", "train", "--input", empty, "--vocab-size", "400", "--out", out, "--quiet"},
      *dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("no text"), std::string::npos) << r.err;
  // A vocabulary the corpus cannot fill.
  r = run_kiln(
      {"tokenizer", "train", "--input", kProse, "--vocab-size", "20000", "--out", out, "--quiet"},
      *dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--vocab-size"), std::string::npos) << r.err;
  // A vocabulary smaller than the special, byte and character pieces.
  r = run_kiln(
      {"tokenizer", "train", "--input", kProse, "--vocab-size", "280", "--out", out, "--quiet"},
      *dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--vocab-size"), std::string::npos) << r.err;
  r = run_kiln({"tokenizer", "train", "--input", kProse, "--vocab-size", "100", "--out", out},
               *dir_);
  EXPECT_EQ(r.code, 2);
  // Bad JSON input names the file and line.
  const std::string bad_json = *dir_ + "/bad.jsonl";
  write_text_file(bad_json, "{\"text\": \"fine\"}\n{\"text\": oops}\n");
  r = run_kiln(
      {"tokenizer", "train", "--input", bad_json, "--vocab-size", "300", "--out", out, "--quiet"},
      *dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("bad.jsonl:2"), std::string::npos) << r.err;

  EXPECT_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(*dir_))
    EXPECT_EQ(e.path().filename().string().find(".never.model.tmp"), std::string::npos) << e.path();
}

TEST_F(TokenizerTest, CliTrainShowsResultAndProducesSameModelAsLibrary) {
  const std::string out = *dir_ + "/cli.model";
  const auto r = run_kiln({"tokenizer", "train", "--input", kProse, "--vocab-size", "400", "--out",
                           out, "--threads", "2"},
                          *dir_);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("400 pieces"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("merges"), std::string::npos) << r.err;  // progress on stderr
  // BPE training is deterministic: same pieces, same scores.
  const auto cli = load_tokenizer(out);
  ASSERT_EQ(cli->vocab_size(), model_->vocab_size());
  for (int32_t id = 0; id < cli->vocab_size(); ++id) {
    EXPECT_EQ(cli->piece(id), model_->piece(id));
    EXPECT_EQ(cli->score(id), model_->score(id));
  }
}

TEST(Utf8, StrictDecoding) {
  EXPECT_EQ(utf8_char_length("a"), 1);
  EXPECT_EQ(utf8_char_length("\xC3\xA9"), 2);
  EXPECT_EQ(utf8_char_length("\xE2\x96\x81"), 3);
  EXPECT_EQ(utf8_char_length("\xF0\x9F\x99\x82"), 4);
  EXPECT_EQ(utf8_char_length("\xF4\x8F\xBF\xBF"), 4);  // U+10FFFF
  EXPECT_EQ(utf8_char_length("\xC0\xAF"), 0);          // overlong
  EXPECT_EQ(utf8_char_length("\xE0\x80\xAF"), 0);      // overlong
  EXPECT_EQ(utf8_char_length("\xED\xA0\x80"), 0);      // surrogate
  EXPECT_EQ(utf8_char_length("\xF4\x90\x80\x80"), 0);  // > U+10FFFF
  EXPECT_EQ(utf8_char_length("\xE2\x96"), 0);          // cut short
  EXPECT_EQ(utf8_char_length("\x80"), 0);              // stray continuation
  EXPECT_EQ(utf8_char_length("\xFF"), 0);
  EXPECT_EQ(normalize_for_sentencepiece(""), "");
  EXPECT_EQ(normalize_for_sentencepiece("a b"),
            "\xE2\x96\x81"
            "a\xE2\x96\x81"
            "b");
}

}  // namespace
}  // namespace kiln
