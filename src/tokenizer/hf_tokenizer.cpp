// HfTokenizer: loading tokenizer.json and running its pipeline.
#include "tokenizer/hf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file_util.h"
#include "tokenizer/hf_added_tokens.h"
#include "tokenizer/hf_bpe.h"
#include "tokenizer/hf_byte_level.h"
#include "tokenizer/hf_decoder.h"
#include "tokenizer/hf_normalizer.h"
#include "tokenizer/hf_pretokenizer.h"

namespace kiln {
namespace {
using hf::JsonAt;
using nlohmann::json;

json parse_json(const std::string& path, const std::string& bytes) {
  try {
    return json::parse(bytes);
  } catch (const json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1, column 5: ..."
    std::string what = e.what();
    const size_t cut = what.find("] ");
    fail_input(path, "not valid JSON: " + (cut == std::string::npos ? what : what.substr(cut + 2)));
  }
}

// The ids a TemplateProcessing special token stands for.
std::vector<int32_t> template_ids(const JsonAt& processor, const std::string& name,
                                  const JsonAt& where) {
  const JsonAt special = processor["special_tokens"];
  if (!special.has(name)) where.fail("names a token missing from special_tokens", "", name);
  const JsonAt ids = special[name]["ids"];
  ids.expect_array();
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) out.push_back(static_cast<int32_t>(ids.at(i).integer()));
  return out;
}

// Fills the ids before and after $A of a post-processor's "single" template.
void read_post_processor(const JsonAt& spec, std::vector<int32_t>& prefix,
                         std::vector<int32_t>& suffix) {
  if (spec.is_null()) return;
  spec.expect_object();
  const JsonAt type = spec["type"];
  const std::string t = type.str();
  if (t == "ByteLevel") return;  // only moves offsets, which Kiln does not report
  if (t == "Sequence") {
    const JsonAt list = spec["processors"];
    list.expect_array();
    for (size_t i = 0; i < list.size(); ++i) read_post_processor(list.at(i), prefix, suffix);
    return;
  }
  if (t != "TemplateProcessing") type.unsupported();
  const JsonAt single = spec["single"];
  single.expect_array();
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonAt item = single.at(i);
    if (item.has("Sequence")) {
      if (seen_sequence) item.fail("a single-sequence template has one $A");
      seen_sequence = true;
    } else if (item.has("SpecialToken")) {
      const auto ids = template_ids(spec, item["SpecialToken"]["id"].str(), item);
      (seen_sequence ? suffix : prefix)
          .insert((seen_sequence ? suffix : prefix).end(), ids.begin(), ids.end());
    } else {
      item.unsupported();
    }
  }
}

// tokenizer_config.json's bos_token/eos_token: a string or {"content": ...}.
std::string config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}
}  // namespace

HfTokenizer::HfTokenizer() = default;
HfTokenizer::~HfTokenizer() = default;

std::unique_ptr<HfTokenizer> HfTokenizer::from_json(const std::string& path,
                                                    const std::string& bytes,
                                                    const std::string& config_path) {
  std::unique_ptr<HfTokenizer> tok(new HfTokenizer());
  tok->path_ = path;
  tok->format_ = "tokenizer.json";
  tok->load(bytes, config_path);
  return tok;
}

void HfTokenizer::load(const std::string& bytes, const std::string& config_path) {
  const json root_json = parse_json(path_, bytes);
  const JsonAt root(root_json, "", &path_);
  if (!root_json.is_object() || !root_json.contains("model"))
    fail_input(path_, "not a tokenizer.json", "a JSON object with \"model\"",
               root_json.is_object() ? "no \"model\"" : root_json.type_name());
  if (root.has("truncation")) root["truncation"].unsupported();
  if (root.has("padding")) root["padding"].unsupported();
  added_ = std::make_unique<hf::AddedTokens>();
  added_->read(root["added_tokens"]);
  normalizer_ = hf::make_normalizer(root["normalizer"]);
  pre_tokenizer_ = hf::make_pre_tokenizer(root["pre_tokenizer"]);
  const JsonAt model = root["model"];
  model.expect_object();
  if (model.str_or("type", "BPE") != "BPE") model["type"].unsupported();
  model_ = std::make_unique<hf::BpeModel>(model);
  decoder_ = hf::make_decoder(root["decoder"]);
  read_post_processor(root["post_processor"], prefix_ids_, suffix_ids_);
  build_vocabulary(config_path);
}

// The id table: the model's vocabulary, then added tokens (which win); then
// BOS/EOS: a one-token template wins, then tokenizer_config.json's names.
void HfTokenizer::build_vocabulary(const std::string& config_path) {
  int32_t size = 0;
  for (const auto& [piece, id] : model_->vocab()) size = std::max(size, id + 1);
  for (const auto& a : added_->all()) size = std::max(size, a.id + 1);
  // Ids are dense in real files; a stray huge id would make a huge table.
  const size_t tokens = model_->vocab().size() + added_->all().size();
  if (size_t(size) > 2 * tokens + 256)
    fail_input(path_, "token ids are too sparse",
               "ids below " + std::to_string(2 * tokens + 256) + " for " + std::to_string(tokens) +
                   " tokens",
               "id " + std::to_string(size - 1));
  std::vector<std::string> pieces(static_cast<size_t>(size));
  std::vector<PieceKind> kinds(static_cast<size_t>(size), PieceKind::unused);
  for (const auto& [piece, id] : model_->vocab()) {
    pieces[size_t(id)] = piece;
    const bool byte = model_->byte_fallback() && byte_piece_value(piece) >= 0;
    kinds[size_t(id)] = byte ? PieceKind::byte : PieceKind::normal;
  }
  if (model_->unk_id() >= 0) kinds[size_t(model_->unk_id())] = PieceKind::unknown;
  for (const auto& a : added_->all()) {
    pieces[size_t(a.id)] = a.content;
    kinds[size_t(a.id)] = a.special ? PieceKind::control : PieceKind::normal;
  }
  for (const auto* list : {&prefix_ids_, &suffix_ids_})
    for (const int32_t id : *list)
      if (id < 0 || id >= size)
        fail_input(path_, "post_processor: special token id out of range",
                   "0 <= id < " + std::to_string(size), std::to_string(id));

  json config;
  if (!config_path.empty()) config = parse_json(config_path, read_file(config_path, 64 << 20));
  auto id_of = [&](const std::string& name) -> int32_t {
    if (name.empty()) return -1;
    for (const auto& a : added_->all())
      if (a.content == name) return a.id;
    auto it = model_->vocab().find(name);
    return it == model_->vocab().end() ? -1 : it->second;
  };
  const int32_t bos =
      prefix_ids_.size() == 1 ? prefix_ids_[0] : id_of(config_token(config, "bos_token"));
  const int32_t eos =
      suffix_ids_.size() == 1 ? suffix_ids_[0] : id_of(config_token(config, "eos_token"));
  set_vocabulary(std::move(pieces), std::vector<float>(static_cast<size_t>(size), 0.0f),
                 std::move(kinds), model_->unk_id(), bos, eos);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  EncodeOptions options;
  options.bos = bos;
  options.eos = eos;
  return encode_with(text, options);
}

void HfTokenizer::encode_text(std::string_view text, bool at_start,
                              std::vector<int32_t>& out) const {
  std::vector<hf::Word> words;
  words.push_back({std::string(text), at_start});
  if (pre_tokenizer_) pre_tokenizer_->apply(words);
  for (const hf::Word& w : words) model_->encode_word(w.text, out);
}

std::vector<int32_t> HfTokenizer::encode_with(std::string_view text,
                                              const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (options.bos) {
    if (!prefix_ids_.empty())
      out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());
    else if (bos_id() >= 0)
      out.push_back(bos_id());
  }
  const std::string clean = hf::sanitize_utf8(text);
  std::vector<hf::Segment> raw, normalized;
  added_->split(clean, false, options.parse_special, raw);
  for (const hf::Segment& seg : raw) {
    if (seg.id >= 0) {
      out.push_back(seg.id);
      continue;
    }
    std::string norm(seg.text);
    if (normalizer_) normalizer_->normalize(norm);
    added_->split(norm, true, options.parse_special, normalized);
    for (const hf::Segment& part : normalized) {
      if (part.id >= 0)
        out.push_back(part.id);
      else
        encode_text(part.text, seg.offset == 0 && part.offset == 0, out);
    }
  }
  if (options.eos) {
    if (!suffix_ids_.empty())
      out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
    else if (eos_id() >= 0)
      out.push_back(eos_id());
  }
  return out;
}

std::string HfTokenizer::decode(std::span<const int32_t> ids) const {
  check_ids(ids);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (const int32_t id : ids)
    if (kind(id) != PieceKind::unused) tokens.push_back(piece(id));
  std::string text;
  if (decoder_) {
    decoder_->decode(tokens, true, false);
    for (const std::string& t : tokens) text += t;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i ? " " : "") + tokens[i];
  }
  return hf::lossy_utf8(text);
}

std::string HfTokenizer::decode_piece(int32_t prev, int32_t id) const {
  if (id < 0 || id >= vocab_size())
    fail_input(path_, "token id out of range", "0 <= id < " + std::to_string(vocab_size()),
               std::to_string(id));
  if (kind(id) == PieceKind::unused) return "";
  std::vector<std::string> tokens{piece(id)};
  const bool at_start = prev < 0 || (bos_id() >= 0 && prev == bos_id());
  if (!decoder_) return (at_start ? "" : " ") + tokens[0];
  decoder_->decode(tokens, at_start, true);
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

std::string HfTokenizer::pre_tokenizer_chain() const {
  return pre_tokenizer_ ? pre_tokenizer_->describe() : "none";
}

int HfTokenizer::added_token_count() const { return static_cast<int>(added_->all().size()); }

}  // namespace kiln
