#include "model/config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln {
namespace {

ModelConfig make(const char* name, int dim, int n_layers, int n_heads, int n_kv_heads, int hidden,
                 int vocab, int seq) {
  ModelConfig c;
  c.name = name;
  c.dim = dim;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = dim / n_heads;
  c.hidden_dim = hidden;
  c.vocab_size = vocab;
  c.max_seq_len = seq;
  c.tie_embeddings = true;  // llama2.c's models share the embedding and classifier
  return c;
}

std::vector<ModelConfig> presets() {
  std::vector<ModelConfig> p;
  p.push_back(make("stories260K", 64, 5, 8, 4, 172, 512, 512));
  p.push_back(make("stories15M", 288, 6, 6, 6, 768, 32000, 256));
  p.push_back(make("stories42M", 512, 8, 8, 8, 1376, 32000, 1024));
  p.push_back(make("stories110M", 768, 12, 12, 12, 2048, 32000, 1024));
  ModelConfig qwen = make("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768);
  qwen.norm_eps = 1e-6;
  qwen.rope_theta = 1000000.0;
  p.push_back(qwen);
  return p;
}

void require(bool ok, const std::string& where, const std::string& field, const std::string& what,
             const std::string& expected, const std::string& got) {
  if (!ok) fail_input(where, field + " " + what, expected, got);
}

// An int field must hold an integer that fits: nlohmann's get<int>() would
// wrap 4294967304 to 8 and turn 1e30 into undefined behaviour. A float with an
// integral value (8.0, as some exporters write) is accepted.
int read_int(const nlohmann::json& v, const std::string& where, const char* key) {
  const auto bad = [&] {
    fail_input(where, std::string("field ") + key + " must be an integer that fits in 32 bits",
               "an integer in [-2147483648, 2147483647]", v.dump());
  };
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() > uint64_t(INT32_MAX)) bad();
    return int(v.get<uint64_t>());
  }
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    if (x < INT32_MIN || x > INT32_MAX) bad();
    return int(x);
  }
  if (v.is_number_float()) {
    const double x = v.get<double>();
    if (!(x >= double(INT32_MIN) && x <= double(INT32_MAX)) || x != std::floor(x)) bad();
    return int(x);
  }
  bad();
  return 0;
}

template <typename T>
void read_field(const nlohmann::json& j, const std::string& where, const char* key, T* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  if constexpr (std::is_same_v<T, int>) {
    *out = read_int(*it, where, key);
  } else {
    const char* expected = std::is_same_v<T, bool>          ? "a boolean"
                           : std::is_same_v<T, std::string> ? "a string"
                                                            : "a number";
    // get<double>() would also take true/false as 1/0; a double field wants a number.
    if (std::is_same_v<T, double> && !it->is_number())
      fail_input(where, std::string("field ") + key + " has the wrong type", expected, it->dump());
    try {
      *out = it->get<T>();
    } catch (const nlohmann::json::exception&) {
      fail_input(where, std::string("field ") + key + " has the wrong type", expected, it->dump());
    }
  }
}

}  // namespace

void ModelConfig::validate(const std::string& where) const {
  auto s = [](auto v) { return std::to_string(v); };
  require(dim > 0, where, "dim", "must be positive", "> 0", s(dim));
  require(n_layers > 0, where, "n_layers", "must be positive", "> 0", s(n_layers));
  require(n_heads > 0, where, "n_heads", "must be positive", "> 0", s(n_heads));
  require(n_kv_heads > 0, where, "n_kv_heads", "must be positive", "> 0", s(n_kv_heads));
  require(n_heads % n_kv_heads == 0, where, "n_kv_heads", "must divide n_heads (" + s(n_heads) + ")",
          "a divisor of " + s(n_heads), s(n_kv_heads));
  require(head_dim > 0, where, "head_dim", "must be positive", "> 0", s(head_dim));
  require(head_dim % 2 == 0, where, "head_dim", "must be even for RoPE", "an even number",
          s(head_dim));
  require(hidden_dim > 0, where, "hidden_dim", "must be positive", "> 0", s(hidden_dim));
  require(vocab_size > 0, where, "vocab_size", "must be positive", "> 0", s(vocab_size));
  require(max_seq_len > 0, where, "max_seq_len", "must be positive", "> 0", s(max_seq_len));
  require(std::isfinite(norm_eps) && norm_eps > 0, where, "norm_eps", "must be a positive number",
          "> 0", s(norm_eps));
  require(std::isfinite(rope_theta) && rope_theta > 0, where, "rope_theta",
          "must be a positive number", "> 0", s(rope_theta));
  // Keep every per-tensor element count well inside 32-bit GEMM dimensions.
  const int64_t limit = int64_t(1) << 24;
  require(dim <= limit, where, "dim", "is too large", "<= " + s(limit), s(dim));
  require(hidden_dim <= limit, where, "hidden_dim", "is too large", "<= " + s(limit), s(hidden_dim));
  require(vocab_size <= limit, where, "vocab_size", "is too large", "<= " + s(limit), s(vocab_size));
  require(int64_t(n_heads) * head_dim <= limit, where, "n_heads * head_dim", "is too large",
          "<= " + s(limit), s(int64_t(n_heads) * head_dim));
  require(n_layers <= 4096, where, "n_layers", "is too large", "<= 4096", s(n_layers));
  require(max_seq_len <= (1 << 20), where, "max_seq_len", "is too large", "<= 1048576",
          s(max_seq_len));
}

int64_t ModelConfig::num_params() const {
  const int64_t C = dim;
  const int64_t per_layer = C + int64_t(qkv_dim()) * C + int64_t(q_dim()) * C + C +
                            3 * int64_t(hidden_dim) * C;
  int64_t n = int64_t(vocab_size) * C + n_layers * per_layer + C;
  if (!tie_embeddings) n += int64_t(vocab_size) * C;
  return n;
}

double ModelConfig::train_flops_per_token(int T) const {
  const double C = dim;
  const double matmul = C * qkv_dim() + double(q_dim()) * C + 3.0 * C * hidden_dim;  // per layer
  const double attention = 2.0 * double(q_dim()) * T / 2.0;  // QK^T and PV, causal half
  const double forward = 2.0 * (n_layers * (matmul + attention) + C * vocab_size);
  return 3.0 * forward;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : presets()) names.push_back(p.name);
  return names;
}

bool find_preset(const std::string& name, ModelConfig* config) {
  for (const auto& p : presets()) {
    if (p.name == name) {
      *config = p;
      return true;
    }
  }
  return false;
}

ModelConfig config_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) fail_input(where, "model config must be a JSON object", "an object", j.type_name());
  ModelConfig c;
  // Hugging Face names first, Kiln's own names override.
  read_field(j, where, "hidden_size", &c.dim);
  read_field(j, where, "num_hidden_layers", &c.n_layers);
  read_field(j, where, "num_attention_heads", &c.n_heads);
  read_field(j, where, "num_key_value_heads", &c.n_kv_heads);
  read_field(j, where, "intermediate_size", &c.hidden_dim);
  read_field(j, where, "max_position_embeddings", &c.max_seq_len);
  read_field(j, where, "rms_norm_eps", &c.norm_eps);
  read_field(j, where, "tie_word_embeddings", &c.tie_embeddings);
  read_field(j, where, "dim", &c.dim);
  read_field(j, where, "n_layers", &c.n_layers);
  read_field(j, where, "n_heads", &c.n_heads);
  read_field(j, where, "n_kv_heads", &c.n_kv_heads);
  read_field(j, where, "head_dim", &c.head_dim);
  read_field(j, where, "hidden_dim", &c.hidden_dim);
  read_field(j, where, "vocab_size", &c.vocab_size);
  read_field(j, where, "max_seq_len", &c.max_seq_len);
  read_field(j, where, "norm_eps", &c.norm_eps);
  read_field(j, where, "rope_theta", &c.rope_theta);
  read_field(j, where, "tie_embeddings", &c.tie_embeddings);
  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  if (c.head_dim == 0 && c.n_heads > 0) {
    if (c.dim % c.n_heads != 0)
      fail_input(where, "dim must be divisible by n_heads when head_dim is not given",
                 "a multiple of " + std::to_string(c.n_heads), std::to_string(c.dim));
    c.head_dim = c.dim / c.n_heads;
  }
  read_field(j, where, "name", &c.name);
  if (c.name.empty()) c.name = where;
  c.validate(where);
  return c;
}

nlohmann::json config_to_json(const ModelConfig& c) {
  return nlohmann::json{{"name", c.name},         {"dim", c.dim},
                        {"n_layers", c.n_layers}, {"n_heads", c.n_heads},
                        {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim},
                        {"hidden_dim", c.hidden_dim}, {"vocab_size", c.vocab_size},
                        {"max_seq_len", c.max_seq_len}, {"norm_eps", c.norm_eps},
                        {"rope_theta", c.rope_theta}, {"tie_embeddings", c.tie_embeddings}};
}

nlohmann::json config_to_hf_json(const ModelConfig& c) {
  return nlohmann::json{{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"hidden_size", c.dim},
                        {"num_hidden_layers", c.n_layers},
                        {"num_attention_heads", c.n_heads},
                        {"num_key_value_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"intermediate_size", c.hidden_dim},
                        {"vocab_size", c.vocab_size},
                        {"max_position_embeddings", c.max_seq_len},
                        {"rms_norm_eps", c.norm_eps},
                        {"rope_theta", c.rope_theta},
                        {"tie_word_embeddings", c.tie_embeddings},
                        {"hidden_act", "silu"},
                        {"attention_bias", false},
                        {"mlp_bias", false},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2},
                        {"torch_dtype", "float32"}};
}

ModelConfig load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_input(path, "cannot open model config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail_input(path, std::string("model config is not valid JSON: ") + e.what());
  }
  return config_from_json(j, path);
}

ModelConfig resolve_config(const std::string& preset_or_path) {
  ModelConfig c;
  if (find_preset(preset_or_path, &c)) return c;
  if (preset_or_path.size() > 5 && preset_or_path.ends_with(".json"))
    return load_config_file(preset_or_path);
  std::string names;
  for (const auto& n : preset_names()) names += (names.empty() ? "" : ", ") + n;
  fail_input(preset_or_path, "unknown model preset", "one of " + names + " or a .json config",
             preset_or_path);
}

}  // namespace kiln
