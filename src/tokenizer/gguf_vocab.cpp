#include "tokenizer/gguf_vocab.h"

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file_util.h"

namespace kiln {
namespace {

using json = nlohmann::json;
using Metadata = std::vector<std::pair<std::string, GgufValue>>;

// llama.cpp's llama_token_type ids.
enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

int32_t token_type(PieceKind kind) {
  switch (kind) {
    case PieceKind::normal: return kNormal;
    case PieceKind::unknown: return kUnknown;
    case PieceKind::control: return kControl;
    case PieceKind::byte: return kByte;
    case PieceKind::unused: return kUnused;
  }
  return kNormal;
}

json parse_file(const std::string& path) {
  try {
    return json::parse(read_file(path, 1ull << 30, "tokenizer file"));
  } catch (const json::exception& e) {
    fail_input(path, std::string("is not valid JSON: ") + e.what());
  }
}

// A token of tokenizer_config.json ("bos_token": "<s>" or {"content": "<s>"}).
std::string config_token(const json& config, const std::string& key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string())
    return v["content"].get<std::string>();
  return "";
}

// Whether the post-processor puts a special token before the text (Llama 3's
// TemplateProcessing "<|begin_of_text|> $A"); searched through Sequence processors.
bool post_processor_adds_prefix(const json& p) {
  if (!p.is_object()) return false;
  if (p.value("type", "") == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const json& q : p["processors"])
      if (post_processor_adds_prefix(q)) return true;
    return false;
  }
  if (p.value("type", "") != "TemplateProcessing" || !p.contains("single") ||
      !p["single"].is_array() || p["single"].empty())
    return false;
  return p["single"][0].is_object() && p["single"][0].contains("SpecialToken");
}

void bpe_metadata(const Tokenizer& tok, const std::string& model_type,
                  std::vector<std::string>& tokens, std::vector<int32_t>& types, Metadata& out) {
  const json j = parse_file(tok.path());
  if (!j.contains("model") || !j["model"].is_object() || j["model"].value("type", "") != "BPE")
    fail_input(tok.path(), "GGUF export needs a BPE tokenizer.json", "model.type BPE",
               j.contains("model") ? j["model"].value("type", "?") : "no model");
  for (const json& a : j.value("added_tokens", json::array())) {
    const int64_t id = a.value("id", int64_t(-1));
    if (id >= 0 && id < int64_t(types.size()) && !a.value("special", false))
      types[size_t(id)] = kUserDefined;
  }
  std::vector<std::string> merges;
  if (j["model"].contains("merges") && j["model"]["merges"].is_array())
    for (const json& m : j["model"]["merges"]) {
      if (m.is_string())
        merges.push_back(m.get<std::string>());
      else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string())
        merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
      else
        fail_input(tok.path(), "model.merges holds an entry that is not a merge",
                   "\"a b\" or [\"a\", \"b\"]", m.dump().substr(0, 40));
    }
  const std::string pre = model_type == "llama" ? "llama-bpe" : "qwen2";
  out.emplace_back("tokenizer.ggml.model", GgufValue::string("gpt2"));
  out.emplace_back("tokenizer.ggml.pre", GgufValue::string(pre));
  out.emplace_back("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
  out.emplace_back("tokenizer.ggml.token_type", GgufValue::i32_array(types));
  out.emplace_back("tokenizer.ggml.merges", GgufValue::string_array(std::move(merges)));

  json config;
  const auto config_path = std::filesystem::path(tok.path()).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::is_regular_file(config_path, ec)) config = parse_file(config_path.string());
  bool add_bos = post_processor_adds_prefix(j.value("post_processor", json()));
  if (config.is_object() && config.contains("add_bos_token") && config["add_bos_token"].is_boolean())
    add_bos = config["add_bos_token"].get<bool>();
  bool add_eos = false;
  if (config.is_object() && config.contains("add_eos_token") && config["add_eos_token"].is_boolean())
    add_eos = config["add_eos_token"].get<bool>();
  out.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(add_bos));
  out.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(add_eos));
  const std::string pad = config_token(config, "pad_token");
  if (!pad.empty())
    for (int32_t id = 0; id < tok.vocab_size(); ++id)
      if (tok.piece(id) == pad) {
        out.emplace_back("tokenizer.ggml.padding_token_id", GgufValue::u32(uint32_t(id)));
        break;
      }
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(
    const Tokenizer& tok, int vocab_size, const std::string& model_type) {
  if (tok.vocab_size() > vocab_size)
    fail_input(tok.path(), "tokenizer has more tokens than the model's vocabulary",
               "at most " + std::to_string(vocab_size), std::to_string(tok.vocab_size()));
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<float> scores(static_cast<size_t>(vocab_size), 0.0f);
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), kUnused);
  for (int32_t id = 0; id < vocab_size; ++id) {
    if (id < tok.vocab_size()) {
      tokens[size_t(id)] = tok.piece(id);
      scores[size_t(id)] = tok.score(id);
      types[size_t(id)] = token_type(tok.kind(id));
    }
    // Gaps in a tokenizer.json's ids and the padding up to the model's V.
    if (tokens[size_t(id)].empty()) {
      tokens[size_t(id)] = "[PAD" + std::to_string(id) + "]";
      types[size_t(id)] = kUnused;
    }
  }
  Metadata out;
  if (tok.format() == "tokenizer.json") {
    bpe_metadata(tok, model_type, tokens, types, out);
  } else {
    out.emplace_back("tokenizer.ggml.model", GgufValue::string("llama"));
    out.emplace_back("tokenizer.ggml.pre", GgufValue::string("default"));
    out.emplace_back("tokenizer.ggml.tokens", GgufValue::string_array(std::move(tokens)));
    out.emplace_back("tokenizer.ggml.scores", GgufValue::f32_array(scores));
    out.emplace_back("tokenizer.ggml.token_type", GgufValue::i32_array(types));
    out.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(true));
    out.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(false));
  }
  if (tok.bos_id() >= 0) out.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(uint32_t(tok.bos_id())));
  if (tok.eos_id() >= 0) out.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(uint32_t(tok.eos_id())));
  if (tok.unk_id() >= 0) out.emplace_back("tokenizer.ggml.unknown_token_id", GgufValue::u32(uint32_t(tok.unk_id())));
  return out;
}

}  // namespace kiln
