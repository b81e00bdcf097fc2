// tokenizer.json components on small hand-made files, each expected id worked
// out by hand from the Hugging Face library's rules (in the comments), so a
// component the real Qwen/Llama files do not use still fails a test when wrong.
// Then bad files through the CLI: exit 2, the path and the JSON path named.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "run_kiln.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace kiln {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

json model(json vocab, json merges = json::array(), json extra = json::object()) {
  json m = {{"type", "BPE"}, {"dropout", nullptr}, {"vocab", vocab}, {"merges", merges}};
  m.update(extra);
  return m;
}

json document(json bpe) {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", json::array()},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", nullptr},
          {"model", bpe}};
}

class HfComponents : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::scratch_dir("hf_components"); }
  std::string write(const json& doc, const std::string& name = "tokenizer.json") {
    const std::string path = dir_ + "/" + name;
    test::write_text_file(path, doc.dump());
    return path;
  }
  std::unique_ptr<Tokenizer> load(const json& doc) { return load_tokenizer(write(doc)); }
  Ids encode(const Tokenizer& t, const std::string& text, bool parse_special = false) {
    EncodeOptions o;
    o.parse_special = parse_special;
    return t.encode_with(text, o);
  }
  std::string dir_;
};

// Merge ranks decide; both merge forms read the same.
TEST_F(HfComponents, MergesByRankInStringAndPairForm) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
  // "b c" first: a|bc, then "a bc" -> abc.
  for (const json& merges :
       {json{"b c", "a bc"}, json::array({json::array({"b", "c"}), json::array({"a", "bc"})})}) {
    const auto t = load(document(model(vocab, merges)));
    EXPECT_EQ(encode(*t, "abc"), (Ids{5}));
    EXPECT_EQ(encode(*t, "abab"), (Ids{0, 1, 0, 1}));  // no "a b" merge
  }
  // "a b" first: ab|c and no "ab c" merge -> [ab, c].
  EXPECT_EQ(encode(*load(document(model(vocab, json{"a b", "b c"}))), "abc"), (Ids{3, 2}));
  // "b c" first without "a bc": [a, bc].
  EXPECT_EQ(encode(*load(document(model(vocab, json{"b c", "a b"}))), "abc"), (Ids{0, 4}));
  // Equal pairs merge leftmost first: "aaa" -> aa|a, not a|aa.
  const json v2 = {{"a", 0}, {"aa", 1}};
  EXPECT_EQ(encode(*load(document(model(v2, json{"a a"}))), "aaa"), (Ids{1, 0}));
}

// Llama-3's ignore_merges: a word that is a token is taken whole.
TEST_F(HfComponents, IgnoreMergesTakesVocabularyWordsWhole) {
  const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"abc", 4}};
  EXPECT_EQ(encode(*load(document(model(vocab, json{"a b"}))), "abc"), (Ids{3, 2}));
  const auto t = load(document(model(vocab, json{"a b"}, {{"ignore_merges", true}})));
  EXPECT_EQ(encode(*t, "abc"), (Ids{4}));
  EXPECT_EQ(encode(*t, "abcab"), (Ids{3, 2, 3}));  // not a token: merged as usual
}

// byte_fallback: an unknown character becomes its <0xAB> bytes, or unk when
// one of its bytes is missing. ByteFallback decodes runs of bytes as UTF-8,
// one U+FFFD per byte for a run that is not valid UTF-8.
TEST_F(HfComponents, ByteFallbackAndUnk) {
  const json vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
  json doc =
      document(model(vocab, json::array(), {{"unk_token", "<unk>"}, {"byte_fallback", true}}));
  doc["decoder"] = {{"type", "Sequence"},
                    {"decoders", {{{"type", "ByteFallback"}}, {{"type", "Fuse"}}}}};
  const auto t = load(doc);
  // a -> 1; é = C3 A9 -> 2 3; z (0x7A has no byte token) -> unk 0.
  EXPECT_EQ(encode(*t, "a\xC3\xA9z"), (Ids{1, 2, 3, 0}));
  EXPECT_EQ(t->decode(Ids{1, 2, 3, 0}), "a\xC3\xA9<unk>");
  EXPECT_EQ(t->kind(2), PieceKind::byte);
  EXPECT_EQ(t->kind(0), PieceKind::unknown);
  // C3 C3 A9 is not valid UTF-8 as a run: three U+FFFD.
  EXPECT_EQ(t->decode(Ids{2, 2, 3}), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  // Streaming gives the raw bytes, which join into "é".
  EXPECT_EQ(t->decode_piece(-1, 2) + t->decode_piece(2, 3), "\xC3\xA9");
}

TEST_F(HfComponents, UnknownCharactersWithAndWithoutFuseUnk) {
  const json vocab = {{"<unk>", 0}, {"a", 1}};
  EXPECT_EQ(encode(*load(document(model(vocab, json::array(), {{"unk_token", "<unk>"}}))), "xya"),
            (Ids{0, 0, 1}));
  const json fused = {{"unk_token", "<unk>"}, {"fuse_unk", true}};
  EXPECT_EQ(encode(*load(document(model(vocab, json::array(), fused))), "xya"), (Ids{0, 1}));
  // No unk token: the library drops the character.
  EXPECT_EQ(encode(*load(document(model(vocab))), "xya"), (Ids{1}));
}

// continuing_subword_prefix "##": characters after the first are looked up as
// "##c"; a merge's result drops the prefix of its right part ("a ##b" -> "ab").
// end_of_word_suffix "</w>" marks the last character.
TEST_F(HfComponents, SubwordPrefixAndWordSuffix) {
  const json v1 = {{"a", 0}, {"##b", 1}, {"##c", 2}, {"ab", 3}, {"c", 4}};
  const auto t1 = load(document(model(v1, json{"a ##b"}, {{"continuing_subword_prefix", "##"}})));
  EXPECT_EQ(encode(*t1, "abc"), (Ids{3, 2}));
  EXPECT_EQ(encode(*t1, "c"), (Ids{4}));
  const json v2 = {{"a", 0}, {"b", 1}, {"b</w>", 2}, {"ab</w>", 3}};
  const auto t2 = load(document(model(v2, json{"a b</w>"}, {{"end_of_word_suffix", "</w>"}})));
  EXPECT_EQ(encode(*t2, "ab"), (Ids{3}));
}

// Split on "-" with each behaviour, on "a-b--c" (segments a - b - - c). Merges
// turn each multi-character piece into one token, so the pieces show:
//   a:0 b:1 c:2 -:3 a-:4 b-:5 -c:6 -b:7 --:8
TEST_F(HfComponents, SplitBehaviours) {
  const json vocab = {{"a", 0},  {"b", 1},  {"c", 2},  {"-", 3}, {"a-", 4},
                      {"b-", 5}, {"-c", 6}, {"-b", 7}, {"--", 8}};
  const json merges = {"a -", "b -", "- c", "- b", "- -"};
  auto with_split = [&](json pattern, const std::string& behavior, bool invert) {
    json doc = document(model(vocab, merges));
    doc["pre_tokenizer"] = {
        {"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}};
    return load(doc);
  };
  const json dash = {{"String", "-"}};
  const std::string text = "a-b--c";
  EXPECT_EQ(encode(*with_split(dash, "Removed", false), text), (Ids{0, 1, 2}));
  EXPECT_EQ(encode(*with_split(dash, "Isolated", false), text), (Ids{0, 3, 1, 3, 3, 2}));
  // A match joins the piece before it unless that piece is a match: a- b- - c.
  EXPECT_EQ(encode(*with_split(dash, "MergedWithPrevious", false), text), (Ids{4, 5, 3, 2}));
  // The same from the right: a -b - -c.
  EXPECT_EQ(encode(*with_split(dash, "MergedWithNext", false), text), (Ids{0, 7, 3, 6}));
  // Adjacent matches join: a - b -- c.
  EXPECT_EQ(encode(*with_split(dash, "Contiguous", false), text), (Ids{0, 3, 1, 8, 2}));
  // invert: the letters are the matches, so Removed keeps the dashes.
  EXPECT_EQ(encode(*with_split(dash, "Removed", true), text), (Ids{3, 3, 3}));
  // A regex: "-+" matches "-" and "--".
  EXPECT_EQ(encode(*with_split({{"Regex", "-+"}}, "Isolated", false), text), (Ids{0, 3, 1, 8, 2}));
  // Without a pre-tokenizer the whole text is one word: a- b- -c? No: merges by
  // rank on a - b - - c: "a -" (0) -> a-, "b -" (1) -> b-, then "- c" (2) -> -c.
  EXPECT_EQ(encode(*load(document(model(vocab, merges))), text), (Ids{4, 5, 6}));
}

// Digits: runs of digits, or each digit alone.
TEST_F(HfComponents, DigitsContiguousAndIndividual) {
  const json vocab = {{"a", 0}, {"1", 1}, {"2", 2}, {"3", 3}, {"12", 4}, {"123", 5}, {"a1", 6}};
  const json merges = {"1 2", "12 3", "a 1"};
  auto with_digits = [&](bool individual) {
    json doc = document(model(vocab, merges));
    doc["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", individual}};
    return load(doc);
  };
  // Contiguous: a | 123 | a -> 0 5 0 ("a 1" cannot merge across the cut).
  EXPECT_EQ(encode(*with_digits(false), "a123a"), (Ids{0, 5, 0}));
  EXPECT_EQ(encode(*with_digits(true), "a123a"), (Ids{0, 1, 2, 3, 0}));
  EXPECT_EQ(encode(*load(document(model(vocab, merges))), "a123"), (Ids{0, 5}));  // 1 2 first
}

// Metaspace (SentencePiece-style): spaces become "▁", one is prepended
// (always, or only at the start of the text with "first"), and words split
// before each "▁". Vocabulary: ▁:0 h:1 i:2 ▁h:3 ▁hi:4, special <s>:5.
TEST_F(HfComponents, MetaspacePreTokenizerAndDecoder) {
  const json vocab = {
      {"\xE2\x96\x81", 0}, {"h", 1}, {"i", 2}, {"\xE2\x96\x81h", 3}, {"\xE2\x96\x81hi", 4}};
  const json merges = {"\xE2\x96\x81 h", "\xE2\x96\x81h i"};
  auto with_scheme = [&](const std::string& scheme) {
    json doc = document(model(vocab, merges));
    doc["added_tokens"] = {{{"id", 5}, {"content", "<s>"}, {"special", true}}};
    doc["pre_tokenizer"] = {{"type", "Metaspace"},
                            {"replacement", "\xE2\x96\x81"},
                            {"prepend_scheme", scheme},
                            {"split", true}};
    doc["decoder"] = {{"type", "Metaspace"},
                      {"replacement", "\xE2\x96\x81"},
                      {"prepend_scheme", scheme},
                      {"split", true}};
    return load(doc);
  };
  const auto always = with_scheme("always");
  EXPECT_EQ(encode(*always, "hi hi"), (Ids{4, 4}));        // ▁hi ▁hi
  EXPECT_EQ(encode(*always, "<s>hi", true), (Ids{5, 4}));  // every piece gets its ▁
  EXPECT_EQ(always->decode(Ids{4, 4}), "hi hi");           // first space dropped
  EXPECT_EQ(always->decode_piece(-1, 4) + always->decode_piece(4, 4), "hi hi");
  const auto first = with_scheme("first");
  EXPECT_EQ(encode(*first, "hi"), (Ids{4}));
  EXPECT_EQ(encode(*first, "<s>hi", true), (Ids{5, 1, 2}));  // not at the start: no ▁
  const auto never = with_scheme("never");
  EXPECT_EQ(encode(*never, "hi hi"), (Ids{1, 2, 4}));
  EXPECT_EQ(never->decode(Ids{4}), " hi");
}

// Normalizers: Llama-2's Prepend("▁") + Replace(" " -> "▁"), with the
// matching decoder Replace + ByteFallback + Fuse + Strip(1 leading space).
TEST_F(HfComponents, PrependReplaceNormalizersAndStripDecoder) {
  const json vocab = {{"\xE2\x96\x81", 0},
                      {"a", 1},
                      {"b", 2},
                      {"\xE2\x96\x81"
                       "a",
                       3}};
  json doc = document(model(vocab, json{"\xE2\x96\x81 a"}));
  doc["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
        {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}};
  doc["decoder"] = {
      {"type", "Sequence"},
      {"decoders",
       {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
        {{"type", "ByteFallback"}},
        {{"type", "Fuse"}},
        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  const auto t = load(doc);
  // "a b" -> "▁a▁b": ▁ a ▁ b, "▁ a" merges at 0 only -> ▁a ▁ b.
  EXPECT_EQ(encode(*t, "a b"), (Ids{3, 0, 2}));
  EXPECT_EQ(t->decode(Ids{3, 0, 2}), "a b");
  EXPECT_EQ(encode(*t, ""), Ids{});  // Prepend leaves empty text empty
}

TEST_F(HfComponents, UnicodeNormalForms) {
  const json vocab = {{"\xC3\xA9", 0}, {"e", 1}, {"\xCC\x81", 2}, {"f", 3}, {"i", 4}, {"a", 5}};
  auto with = [&](const std::string& form) {
    json doc = document(model(vocab));
    doc["normalizer"] = {{"type", form}};
    return load(doc);
  };
  EXPECT_EQ(encode(*with("NFC"), "e\xCC\x81"), (Ids{0}));  // e + U+0301 -> é
  // ASCII around and between: each "e" still composes with the mark after it.
  EXPECT_EQ(encode(*with("NFC"),
                   "ae\xCC\x81"
                   "ae\xCC\x81"
                   "e\xCC\x81"
                   "a"),
            (Ids{5, 0, 5, 0, 0, 5}));
  EXPECT_EQ(encode(*with("NFD"),
                   "a\xC3\xA9"
                   "a"),
            (Ids{5, 1, 2, 5}));
  EXPECT_EQ(encode(*with("NFD"), "\xC3\xA9"), (Ids{1, 2}));
  EXPECT_EQ(encode(*with("NFKC"), "\xEF\xAC\x81"), (Ids{3, 4}));  // ﬁ -> f i
  EXPECT_EQ(encode(*with("NFC"), "\xEF\xAC\x81"), Ids{});         // ﬁ stays; not in vocab
}

// ByteLevel with GPT-2's regex and add_prefix_space. "Ġ" is the space byte,
// "Ã" and "©" the bytes C3 and A9 of "é".
TEST_F(HfComponents, ByteLevelPreTokenizerAndDecoder) {
  const json vocab = {{"\xC4\xA0", 0},   {"h", 1}, {"i", 2},        {"\xC4\xA0h", 3},
                      {"\xC4\xA0hi", 4}, {"!", 5}, {"\xC3\x83", 6}, {"\xC2\xA9", 7}};
  const json merges = {"\xC4\xA0 h", "\xC4\xA0h i"};
  auto with = [&](bool prefix) {
    json doc = document(model(vocab, merges));
    doc["pre_tokenizer"] = {
        {"type", "ByteLevel"}, {"add_prefix_space", prefix}, {"use_regex", true}};
    doc["decoder"] = {{"type", "ByteLevel"}};
    return load(doc);
  };
  EXPECT_EQ(encode(*with(true), "hi!"), (Ids{4, 5}));  // " hi" | "!"
  EXPECT_EQ(encode(*with(false), "hi!"), (Ids{1, 2, 5}));
  const auto t = with(false);
  EXPECT_EQ(encode(*t, "\xC3\xA9"), (Ids{6, 7}));
  EXPECT_EQ(t->decode(Ids{4, 5}), " hi!");
  EXPECT_EQ(t->decode(Ids{6, 7}), "\xC3\xA9");
  EXPECT_EQ(t->decode(Ids{6}), "\xEF\xBF\xBD");  // a cut character: one U+FFFD
  EXPECT_EQ(t->decode_piece(-1, 6), "\xC3");     // streaming: the raw byte
  EXPECT_EQ(t->decode_piece(6, 7), "\xA9");
}

// Added tokens: longest match first, special ones only with parse_special,
// non-special always; lstrip/rstrip take the whitespace beside them;
// single_word needs non-word characters around.
TEST_F(HfComponents, AddedTokens) {
  json vocab = json::object();
  const std::string chars = "ab <xy>[L]R";
  for (size_t i = 0; i < chars.size(); ++i) vocab[std::string(1, chars[i])] = int(i);
  // a:0 b:1 ' ':2 <:3 x:4 y:5 >:6 [:7 L:8 ]:9 R:10
  json doc = document(model(vocab));
  doc["added_tokens"] = {
      {{"id", 11}, {"content", "<x"}, {"special", true}},
      {{"id", 12}, {"content", "<xy>"}, {"special", true}},
      {{"id", 13}, {"content", "ab"}, {"single_word", true}, {"normalized", false}},
      {{"id", 14}, {"content", "[L]"}, {"lstrip", true}, {"normalized", false}},
      {{"id", 15}, {"content", "[R]"}, {"rstrip", true}, {"normalized", false}}};
  const auto t = load(doc);
  EXPECT_EQ(encode(*t, "<xy>", true), (Ids{12}));
  EXPECT_EQ(encode(*t, "<x>", true), (Ids{11, 6}));
  EXPECT_EQ(encode(*t, "<xy>", false), (Ids{3, 4, 5, 6}));
  EXPECT_EQ(encode(*t, "ab"), (Ids{13}));
  EXPECT_EQ(encode(*t, "aab"), (Ids{0, 0, 1}));
  EXPECT_EQ(encode(*t, "a ab b"), (Ids{0, 2, 13, 2, 1}));
  EXPECT_EQ(encode(*t, "a  [L]"), (Ids{0, 14}));
  EXPECT_EQ(encode(*t, "[R]  b"), (Ids{15, 1}));
  EXPECT_EQ(t->kind(12), PieceKind::control);
  EXPECT_EQ(t->kind(13), PieceKind::normal);
  EXPECT_EQ(t->decode(Ids{0, 12, 1}), "a <xy> b");  // no decoder: pieces joined by spaces
}

TEST_F(HfComponents, TemplateProcessingGivesBosAndEos) {
  json doc = document(model({{"a", 0}}));
  doc["added_tokens"] = {{{"id", 1}, {"content", "<s>"}, {"special", true}},
                         {{"id", 2}, {"content", "</s>"}, {"special", true}}};
  doc["post_processor"] = {{"type", "TemplateProcessing"},
                           {"single",
                            {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                             {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                             {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
                           {"pair", json::array()},
                           {"special_tokens",
                            {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}},
                             {"</s>", {{"id", "</s>"}, {"ids", {2}}, {"tokens", {"</s>"}}}}}}};
  const auto t = load(doc);
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->encode("aa", true, true), (Ids{1, 0, 0, 2}));
  EXPECT_EQ(t->encode("aa", false, false), (Ids{0, 0}));
}

// A model directory: tokenizer.json is found in it, and tokenizer_config.json
// beside it names BOS/EOS (as a string or as {"content": ...}).
TEST_F(HfComponents, ModelDirectoryWithTokenizerConfig) {
  json doc = document(model({{"a", 0}}));
  doc["added_tokens"] = {{{"id", 1}, {"content", "<s>"}, {"special", true}},
                         {{"id", 2}, {"content", "</s>"}, {"special", true}}};
  const std::string dir = dir_ + "/model";
  std::filesystem::create_directories(dir);
  test::write_text_file(dir + "/tokenizer.json", doc.dump());
  test::write_text_file(
      dir + "/tokenizer_config.json",
      R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"})");
  const auto t = load_tokenizer(dir);
  EXPECT_EQ(t->path(), dir + "/tokenizer.json");
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->encode("a", true, true), (Ids{1, 0, 2}));
  EXPECT_EQ(t->decode(Ids{1, 0, 2}), "<s> a </s>");  // no decoder: joined by spaces
}

// --- bad files, through the CLI ----------------------------------------------

class HfBadFiles : public HfComponents {
 protected:
  // `kiln tokenizer encode` on `doc` (or raw text): exit 2, stderr has `message`.
  void expect_rejected(const std::string& bytes, const std::string& message) {
    const std::string path = dir_ + "/bad.json";
    test::write_text_file(path, bytes);
    const auto r =
        test::run_kiln({"tokenizer", "encode", "--tokenizer", path, "--text", "x"}, dir_);
    EXPECT_EQ(r.code, 2) << r.err;
    EXPECT_NE(r.err.find("kiln: error: " + path + ": " + message), std::string::npos)
        << "stderr: " << r.err << "\nwanted: " << message;
  }
  json good() { return document(model({{"a", 0}, {"b", 1}, {"ab", 2}}, json{"a b"})); }
};

TEST_F(HfBadFiles, InvalidJson) {
  const std::string text = good().dump();
  expect_rejected(text.substr(0, text.size() / 2), "not valid JSON");
  expect_rejected("{\"model\": ", "not valid JSON");
  expect_rejected("{\"version\": \"1.0\"}", "not a tokenizer.json");
}

TEST_F(HfBadFiles, MergeOfUnknownTokens) {
  json doc = good();
  doc["model"]["merges"] = {"a b", "a zz"};
  expect_rejected(doc.dump(), "model.merges[1]: merge names a token that is not in model.vocab");
  doc["model"]["merges"] = json::array(
      {json::array({"a", "b"}), json::array({"b", "b"})});  // "bb" is not in the vocabulary
  expect_rejected(doc.dump(), "model.merges[1]: merge names a token that is not in model.vocab");
  doc["model"]["merges"] = {"a b c"};
  expect_rejected(doc.dump(), "model.merges[0]: a merge needs two tokens");
}

TEST_F(HfBadFiles, InvalidRegex) {
  json doc = good();
  doc["pre_tokenizer"] = {{"type", "Split"},
                          {"pattern", {{"Regex", "(unclosed"}}},
                          {"behavior", "Isolated"},
                          {"invert", false}};
  expect_rejected(doc.dump(), "pre_tokenizer.pattern.Regex: invalid regex");
}

TEST_F(HfBadFiles, UnsupportedComponents) {
  json doc = good();
  doc["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}}, {{"type", "Whitespace"}}}}};
  expect_rejected(doc.dump(),
                  "pre_tokenizer.pretokenizers[1].type: \"Whitespace\" is not supported");
  doc = good();
  doc["normalizer"] = {{"type", "Lowercase"}};
  expect_rejected(doc.dump(), "normalizer.type: \"Lowercase\" is not supported");
  doc = good();
  doc["decoder"] = {{"type", "WordPiece"}};
  expect_rejected(doc.dump(), "decoder.type: \"WordPiece\" is not supported");
  doc = good();
  doc["model"]["type"] = "Unigram";
  expect_rejected(doc.dump(), "model.type: \"Unigram\" is not supported");
  doc = good();
  doc["model"]["dropout"] = 0.1;
  expect_rejected(doc.dump(), "model.dropout: 0.1 is not supported");
  doc = good();
  doc["post_processor"] = {{"type", "BertProcessing"}};
  expect_rejected(doc.dump(), "post_processor.type: \"BertProcessing\" is not supported");
  doc = good();
  doc["pre_tokenizer"] = {
      {"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Sideways"}};
  expect_rejected(doc.dump(), "pre_tokenizer.behavior: \"Sideways\" is not supported");
  doc = good();
  doc["truncation"] = {{"max_length", 5}};
  expect_rejected(doc.dump(), "truncation: ");
}

TEST_F(HfBadFiles, WrongTypes) {
  json doc = good();
  doc["model"]["vocab"]["c"] = "three";
  expect_rejected(doc.dump(), "model.vocab: token \"c\" has a bad id");
  doc = good();
  doc["added_tokens"] = {{{"id", "x"}, {"content", "<s>"}}};
  expect_rejected(doc.dump(), "added_tokens[0].id: wrong type (expected integer, got string)");
}

TEST_F(HfBadFiles, BadTokenizerConfigIsNamed) {
  const std::string dir = dir_ + "/model";
  std::filesystem::create_directories(dir);
  test::write_text_file(dir + "/tokenizer.json", good().dump());
  test::write_text_file(dir + "/tokenizer_config.json", "{\"bos_token\": ");
  const auto r = test::run_kiln({"tokenizer", "info", "--tokenizer", dir}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(dir + "/tokenizer_config.json: not valid JSON"), std::string::npos) << r.err;
}

TEST_F(HfBadFiles, DecodeOutOfRangeAndDirectoryWithoutTokenizer) {
  const std::string path = write(good());
  auto r = test::run_kiln({"tokenizer", "decode", "--tokenizer", path, "--ids", "0 3"}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(
      r.err.find(path + ": token id at position 1 is out of range (expected 0 <= id < 3, got 3)"),
      std::string::npos)
      << r.err;
  const std::string empty_dir = dir_ + "/empty_model";
  std::filesystem::create_directories(empty_dir);
  r = test::run_kiln({"tokenizer", "info", "--tokenizer", empty_dir}, dir_);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find(empty_dir + ": directory has no tokenizer"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kiln
