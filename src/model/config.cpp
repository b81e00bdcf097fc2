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
  ModelConfig qwen2 = make("qwen2.5-0.5b", 896, 24, 14, 2, 4864, 151936, 32768);
  qwen2.model_type = "qwen2";
  qwen2.qkv_bias = true;
  qwen2.norm_eps = 1e-6;
  qwen2.rope_theta = 1000000.0;
  p.push_back(qwen2);
  ModelConfig qwen3 = make("qwen3-0.6b", 1024, 28, 16, 8, 3072, 151936, 40960);
  qwen3.model_type = "qwen3";
  qwen3.head_dim = 128;  // 16 heads x 128 = 2048 != hidden 1024
  qwen3.qk_norm = true;
  qwen3.norm_eps = 1e-6;
  qwen3.rope_theta = 1000000.0;
  p.push_back(qwen3);
  ModelConfig llama = make("llama-3.2-1b", 2048, 16, 32, 8, 8192, 128256, 131072);
  llama.rope_theta = 500000.0;
  llama.rope_scaling = {32.0, 1.0, 4.0, 8192};
  p.push_back(llama);
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

// What each model_type can express: Qwen2 always has q/k/v biases, only Qwen3
// has q/k norms, Mistral has no attention biases; llama3 rope_scaling is sane.
void validate_arch(const ModelConfig& c, const std::string& where) {
  const std::string& t = c.model_type;
  require(t == "llama" || t == "qwen2" || t == "qwen3" || t == "mistral", where, "model_type",
          "is not a supported architecture", "llama, qwen2, qwen3 or mistral", t);
  require(t != "qwen2" || c.qkv_bias, where, "qkv_bias", "must be true for qwen2", "true", "false");
  require(!c.qk_norm || t == "qwen3", where, "qk_norm", "exists only in qwen3", "model_type qwen3",
          t);
  require(!c.qkv_bias || t != "mistral", where, "qkv_bias", "does not exist in mistral", "false",
          "true");
  if (!c.has_rope_scaling()) return;
  const auto& r = c.rope_scaling;
  auto s = [](double v) { return std::to_string(v); };
  require(std::isfinite(r.factor) && r.factor >= 1, where, "rope_scaling.factor",
          "must be a number >= 1", ">= 1", s(r.factor));
  require(std::isfinite(r.low_freq_factor) && r.low_freq_factor > 0, where,
          "rope_scaling.low_freq_factor", "must be positive", "> 0", s(r.low_freq_factor));
  require(std::isfinite(r.high_freq_factor) && r.high_freq_factor > r.low_freq_factor, where,
          "rope_scaling.high_freq_factor", "must exceed low_freq_factor",
          "> " + s(r.low_freq_factor), s(r.high_freq_factor));
  require(r.original_max_position_embeddings > 0, where,
          "rope_scaling.original_max_position_embeddings", "must be positive", "> 0",
          std::to_string(r.original_max_position_embeddings));
}

}  // namespace

void ModelConfig::validate(const std::string& where) const {
  auto s = [](auto v) { return std::to_string(v); };
  require(dim > 0, where, "dim", "must be positive", "> 0", s(dim));
  require(n_layers > 0, where, "n_layers", "must be positive", "> 0", s(n_layers));
  require(n_heads > 0, where, "n_heads", "must be positive", "> 0", s(n_heads));
  require(n_kv_heads > 0, where, "n_kv_heads", "must be positive", "> 0", s(n_kv_heads));
  require(n_heads % n_kv_heads == 0, where, "n_kv_heads",
          "must divide n_heads (" + s(n_heads) + ")", "a divisor of " + s(n_heads), s(n_kv_heads));
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
  require(hidden_dim <= limit, where, "hidden_dim", "is too large", "<= " + s(limit),
          s(hidden_dim));
  require(vocab_size <= limit, where, "vocab_size", "is too large", "<= " + s(limit),
          s(vocab_size));
  require(int64_t(n_heads) * head_dim <= limit, where, "n_heads * head_dim", "is too large",
          "<= " + s(limit), s(int64_t(n_heads) * head_dim));
  validate_arch(*this, where);
  require(n_layers <= 4096, where, "n_layers", "is too large", "<= 4096", s(n_layers));
  require(max_seq_len <= (1 << 20), where, "max_seq_len", "is too large", "<= 1048576",
          s(max_seq_len));
}

int64_t ModelConfig::num_params() const {
  const int64_t C = dim;
  const int64_t per_layer = C + int64_t(qkv_dim()) * C + int64_t(q_dim()) * C + C +
                            3 * int64_t(hidden_dim) * C + (qkv_bias ? qkv_dim() : 0) +
                            (qk_norm ? 2 * head_dim : 0);
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

RopeParams ModelConfig::rope() const { return RopeParams(rope_theta, rope_scaling); }

double RopeParams::inv_freq(int i, int D) const {
  const double f = std::pow(theta, -2.0 * i / D);
  if (scaling.factor == 0) return f;
  const double pi = 3.14159265358979323846;
  const double original = scaling.original_max_position_embeddings;
  const double wavelen = 2 * pi / f;
  if (wavelen < original / scaling.high_freq_factor) return f;  // high frequencies kept
  if (wavelen > original / scaling.low_freq_factor) return f / scaling.factor;  // low: scaled
  const double s = (original / wavelen - scaling.low_freq_factor) /
                   (scaling.high_freq_factor - scaling.low_freq_factor);
  return (1 - s) * f / scaling.factor + s * f;  // medium: interpolated
}

bool RopeParams::same_as(const RopeParams& o) const {
  return theta == o.theta && scaling.factor == o.scaling.factor &&
         scaling.low_freq_factor == o.scaling.low_freq_factor &&
         scaling.high_freq_factor == o.scaling.high_freq_factor &&
         scaling.original_max_position_embeddings == o.scaling.original_max_position_embeddings;
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

namespace {

bool present(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && !it->is_null();
}

// rope_scaling: null, {"rope_type": "default"} or llama3; any other type changes
// the frequencies in a way Kiln does not implement.
void read_rope_scaling(const nlohmann::json& j, const std::string& where, ModelConfig* c) {
  if (!present(j, "rope_scaling")) return;
  const nlohmann::json& r = j["rope_scaling"];
  if (!r.is_object())
    fail_input(where, "field rope_scaling must be an object or null", "an object", r.dump());
  std::string type;
  read_field(r, where, "type", &type);
  read_field(r, where, "rope_type", &type);
  if (type == "default") return;
  if (type != "llama3")
    fail_input(where, "field rope_scaling: this rope type is not implemented", "llama3 or default",
               type.empty() ? r.dump() : type);
  auto& s = c->rope_scaling;
  read_field(r, where, "factor", &s.factor);
  read_field(r, where, "low_freq_factor", &s.low_freq_factor);
  read_field(r, where, "high_freq_factor", &s.high_freq_factor);
  read_field(r, where, "original_max_position_embeddings", &s.original_max_position_embeddings);
  if (s.factor == 0) fail_input(where, "field rope_scaling.factor is missing", "> 0", "0");
}

// Fields of HF configs whose math Kiln does not implement: each fails, named.
void reject_unsupported(const nlohmann::json& j, const std::string& where, const ModelConfig& c) {
  std::string act = "silu";
  read_field(j, where, "hidden_act", &act);
  if (act != "silu") fail_input(where, "field hidden_act is not implemented", "silu", act);
  bool flag = false;
  read_field(j, where, "mlp_bias", &flag);
  if (flag) fail_input(where, "field mlp_bias is not implemented", "false", "true");
  flag = false;
  read_field(j, where, "use_sliding_window", &flag);
  if (flag)
    fail_input(where, "field use_sliding_window: sliding-window attention is not implemented",
               "false", "true");
  if (c.model_type == "mistral" && present(j, "sliding_window")) {
    int window = 0;
    read_field(j, where, "sliding_window", &window);
    if (window < c.max_seq_len)
      fail_input(where, "field sliding_window: sliding-window attention is not implemented",
                 "null or >= max_position_embeddings (" + std::to_string(c.max_seq_len) + ")",
                 std::to_string(window));
  }
  for (const char* key : {"num_experts", "num_local_experts", "n_routed_experts",
                          "num_experts_per_tok", "moe_intermediate_size"}) {
    if (present(j, key) && !(j[key].is_number() && j[key].get<double>() == 0))
      fail_input(where, std::string("field ") + key + ": mixture of experts is not implemented",
                 "absent or 0", j[key].dump());
  }
}

// model_type picks the architecture: qwen2 always has q/k/v biases, qwen3 has
// q/k norms; attention_bias says whether llama/qwen3 projections have biases.
void read_architecture(const nlohmann::json& j, const std::string& where, ModelConfig* c) {
  const bool typed = present(j, "model_type");
  read_field(j, where, "model_type", &c->model_type);
  read_field(j, where, "attention_bias", &c->qkv_bias);
  if (c->model_type == "qwen2") c->qkv_bias = true;
  if (c->model_type == "qwen3") c->qk_norm = true;
  read_field(j, where, "qkv_bias", &c->qkv_bias);
  read_field(j, where, "qk_norm", &c->qk_norm);
  if (!typed && c->qk_norm)
    c->model_type = "qwen3";
  else if (!typed && c->qkv_bias && !c->qk_norm)
    c->model_type = "qwen2";
  read_rope_scaling(j, where, c);
}

}  // namespace

ModelConfig config_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object())
    fail_input(where, "model config must be a JSON object", "an object", j.type_name());
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
  read_architecture(j, where, &c);
  reject_unsupported(j, where, c);
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

namespace {

nlohmann::json rope_scaling_json(const ModelConfig& c) {
  if (!c.has_rope_scaling()) return nullptr;
  const auto& r = c.rope_scaling;
  return {{"rope_type", "llama3"},
          {"factor", r.factor},
          {"low_freq_factor", r.low_freq_factor},
          {"high_freq_factor", r.high_freq_factor},
          {"original_max_position_embeddings", r.original_max_position_embeddings}};
}

const char* architecture_of(const std::string& model_type) {
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  if (model_type == "qwen3") return "Qwen3ForCausalLM";
  if (model_type == "mistral") return "MistralForCausalLM";
  return "LlamaForCausalLM";
}

}  // namespace

nlohmann::json config_to_json(const ModelConfig& c) {
  return nlohmann::json{{"name", c.name},
                        {"dim", c.dim},
                        {"n_layers", c.n_layers},
                        {"n_heads", c.n_heads},
                        {"n_kv_heads", c.n_kv_heads},
                        {"head_dim", c.head_dim},
                        {"hidden_dim", c.hidden_dim},
                        {"vocab_size", c.vocab_size},
                        {"max_seq_len", c.max_seq_len},
                        {"norm_eps", c.norm_eps},
                        {"rope_theta", c.rope_theta},
                        {"tie_embeddings", c.tie_embeddings},
                        {"model_type", c.model_type},
                        {"qkv_bias", c.qkv_bias},
                        {"qk_norm", c.qk_norm},
                        {"rope_scaling", rope_scaling_json(c)}};
}

nlohmann::json config_to_hf_json(const ModelConfig& c) {
  nlohmann::json j{{"architectures", {architecture_of(c.model_type)}},
                   {"model_type", c.model_type},
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
                   {"rope_scaling", rope_scaling_json(c)},
                   {"tie_word_embeddings", c.tie_embeddings},
                   {"hidden_act", "silu"},
                   {"attention_bias", c.qkv_bias},
                   {"mlp_bias", false},
                   {"bos_token_id", 1},
                   {"eos_token_id", 2},
                   {"torch_dtype", "float32"}};
  if (c.model_type == "qwen2" || c.model_type == "qwen3" || c.model_type == "mistral") {
    j["use_sliding_window"] = false;
    j["sliding_window"] = nullptr;
    j["max_window_layers"] = c.n_layers;
  }
  return j;
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
