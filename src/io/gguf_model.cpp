#include "io/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "core/error.h"
#include "io/file_util.h"
#include "io/llama2c_model.h"
#include "io/model_safetensors.h"

namespace kiln {
namespace {

std::string s(int64_t v) { return std::to_string(v); }

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight".
std::string gguf_name(const std::string& hf) {
  static const std::map<std::string, std::string> top = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"}};
  if (auto it = top.find(hf); it != top.end()) return it->second;
  static const std::map<std::string, std::string> layer = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"}};
  const std::string prefix = "model.layers.";
  const size_t dot = hf.find('.', prefix.size());
  if (hf.rfind(prefix, 0) == 0 && dot != std::string::npos)
    if (auto it = layer.find(hf.substr(dot + 1)); it != layer.end())
      return "blk." + hf.substr(prefix.size(), dot - prefix.size()) + "." + it->second;
  fail_runtime(hf, "no GGUF name for this parameter");
}

// Rows of Wq/Wk (and their biases) are permuted for the llama architecture.
// Returns the head count the permutation runs over, 0 for other tensors.
int rope_heads(const std::string& hf, const ModelConfig& c, const std::string& arch) {
  if (arch != "llama") return 0;
  if (hf.ends_with("self_attn.q_proj.weight") || hf.ends_with("self_attn.q_proj.bias"))
    return c.n_heads;
  if (hf.ends_with("self_attn.k_proj.weight") || hf.ends_with("self_attn.k_proj.bias"))
    return c.n_kv_heads;
  return 0;
}

std::vector<int64_t> reversed(const std::vector<int64_t>& shape) {
  return std::vector<int64_t>(shape.rbegin(), shape.rend());
}

// llama.cpp's per-frequency divisors for Llama 3 scaling: plain / scaled.
std::vector<float> rope_freq_factors(const ModelConfig& c) {
  const RopeParams plain(c.rope_theta), scaled = c.rope();
  std::vector<float> f(size_t(c.head_dim / 2));
  for (int i = 0; i < c.head_dim / 2; ++i)
    f[size_t(i)] = float(plain.inv_freq(i, c.head_dim) / scaled.inv_freq(i, c.head_dim));
  return f;
}

uint32_t file_type(GgmlType type) {  // llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0, MOSTLY_BF16
  switch (type) {
    case GgmlType::f32: return 0;
    case GgmlType::f16: return 1;
    case GgmlType::q8_0: return 7;
    case GgmlType::bf16: return 32;
  }
  return 0;
}

void add_hyperparameters(GgufWriter& w, const ModelConfig& c, const std::string& arch,
                         GgmlType type) {
  auto u32 = [&](const std::string& key, int64_t v) { w.add(arch + "." + key, GgufValue::u32(uint32_t(v))); };
  w.add("general.architecture", GgufValue::string(arch));
  w.add("general.file_type", GgufValue::u32(file_type(type)));
  if (type == GgmlType::q8_0) w.add("general.quantization_version", GgufValue::u32(2));
  u32("context_length", c.max_seq_len);
  u32("embedding_length", c.dim);
  u32("block_count", c.n_layers);
  u32("feed_forward_length", c.hidden_dim);
  u32("attention.head_count", c.n_heads);
  u32("attention.head_count_kv", c.n_kv_heads);
  // Written always (llama.cpp's default, dim / head_count, holds for most models).
  u32("attention.key_length", c.head_dim);
  u32("attention.value_length", c.head_dim);
  u32("rope.dimension_count", c.head_dim);
  w.add(arch + ".attention.layer_norm_rms_epsilon", GgufValue::f32(float(c.norm_eps)));
  w.add(arch + ".rope.freq_base", GgufValue::f32(float(c.rope_theta)));
  u32("vocab_size", c.vocab_size);
  if (c.has_rope_scaling()) {
    w.add("kiln.rope_scaling.factor", GgufValue::f32(float(c.rope_scaling.factor)));
    w.add("kiln.rope_scaling.low_freq_factor", GgufValue::f32(float(c.rope_scaling.low_freq_factor)));
    w.add("kiln.rope_scaling.high_freq_factor",
          GgufValue::f32(float(c.rope_scaling.high_freq_factor)));
    w.add("kiln.rope_scaling.original_max_position_embeddings",
          GgufValue::u32(uint32_t(c.rope_scaling.original_max_position_embeddings)));
  }
}

}  // namespace

std::string gguf_architecture(const ModelConfig& c, const std::string& where) {
  std::string arch;
  if (c.model_type == "llama" || c.model_type == "mistral") {
    arch = "llama";
    if (c.qk_norm)
      fail_input(where, "llama.cpp's llama architecture has no q/k norms", "qk_norm = false",
                 "qk_norm = true");
  } else if (c.model_type == "qwen2") {
    arch = "qwen2";
    if (!c.qkv_bias || c.qk_norm)
      fail_input(where, "llama.cpp's qwen2 architecture has q/k/v biases and no q/k norms",
                 "qkv_bias = true, qk_norm = false", "another combination");
  } else if (c.model_type == "qwen3") {
    arch = "qwen3";
    if (c.qkv_bias || !c.qk_norm)
      fail_input(where, "llama.cpp's qwen3 architecture has q/k norms and no q/k/v biases",
                 "qkv_bias = false, qk_norm = true", "another combination");
  } else {
    fail_input(where, "model_type has no GGUF architecture", "llama, mistral, qwen2 or qwen3",
               c.model_type);
  }
  if (c.has_rope_scaling() && arch != "llama")
    fail_input(where, "rope_scaling is written to GGUF for the llama architecture only",
               "no rope_scaling", "llama3 scaling on " + arch);
  return arch;
}

void save_gguf_model(const std::string& path, const ModelConfig& config, const ParamLayout& layout,
                     const float* params, GgmlType type,
                     const std::vector<std::pair<std::string, GgufValue>>& extra) {
  const std::string arch = gguf_architecture(config, path);
  GgufWriter w;
  add_hyperparameters(w, config, arch, type);
  for (const auto& [key, value] : extra) w.add(key, value);
  std::vector<std::vector<float>> permuted;  // alive until w.write()
  permuted.reserve(size_t(2 * config.n_layers));
  std::vector<float> freqs;
  if (config.has_rope_scaling()) {
    freqs = rope_freq_factors(config);
    w.add_tensor({"rope_freqs.weight", {int64_t(freqs.size())}, GgmlType::f32, freqs.data()});
  }
  for (const ParamInfo& p : layout.params()) {
    const float* data = params + p.offset;
    if (const int heads = rope_heads(p.name, config, arch)) {
      const int64_t cols = p.shape.size() == 2 ? p.shape[1] : 1;
      permuted.emplace_back(size_t(p.numel()));
      hf_rows_to_llama2c(data, permuted.back().data(), heads, config.head_dim, cols);
      data = permuted.back().data();
    }
    GgmlType t = p.shape.size() == 2 ? type : GgmlType::f32;
    if (t == GgmlType::q8_0 && p.shape.back() % kQ8_0Block != 0) t = GgmlType::f16;
    w.add_tensor({gguf_name(p.name), reversed(p.shape), t, data});
  }
  w.write(path);
}

bool is_gguf_file(const std::string& path) {
  try {
    InputFile file(path);
    if (file.size() < 4) return false;
    char magic[4];
    file.read_at(0, magic, 4);
    return std::memcmp(magic, "GGUF", 4) == 0;
  } catch (const std::exception&) {
    return false;
  }
}

namespace {

int positive(const GgufReader& r, const std::string& key, std::optional<uint64_t> fallback = {}) {
  std::optional<uint64_t> v = r.find_uint(key);
  if (!v) v = fallback;
  if (!v) fail_input(r.path(), "metadata \"" + key + "\" is missing", "a positive integer", "nothing");
  if (*v == 0 || *v > (1u << 30))
    fail_input(r.path(), "metadata \"" + key + "\" is out of range", "1 to 2^30", std::to_string(*v));
  return int(*v);
}

ModelConfig config_from_gguf(const GgufReader& r) {
  const std::string arch = r.get_string("general.architecture");
  if (arch != "llama" && arch != "qwen2" && arch != "qwen3")
    fail_input(r.path(), "general.architecture is not one kiln reads", "llama, qwen2 or qwen3", arch);
  const std::string a = arch + ".";
  ModelConfig c;
  c.model_type = arch;
  c.name = r.path();
  c.dim = positive(r, a + "embedding_length");
  c.n_layers = positive(r, a + "block_count");
  c.hidden_dim = positive(r, a + "feed_forward_length");
  c.n_heads = positive(r, a + "attention.head_count");
  c.n_kv_heads = positive(r, a + "attention.head_count_kv", uint64_t(c.n_heads));
  c.head_dim = positive(r, a + "attention.key_length", uint64_t(c.dim / c.n_heads));
  if (positive(r, a + "attention.value_length", uint64_t(c.head_dim)) != c.head_dim)
    fail_input(r.path(), "metadata \"" + a + "attention.value_length\" differs from key_length",
               std::to_string(c.head_dim), std::to_string(r.get_uint(a + "attention.value_length")));
  if (positive(r, a + "rope.dimension_count", uint64_t(c.head_dim)) != c.head_dim)
    fail_input(r.path(), "partial rotary embedding is not implemented (rope.dimension_count)",
               std::to_string(c.head_dim), std::to_string(r.get_uint(a + "rope.dimension_count")));
  c.max_seq_len = positive(r, a + "context_length");
  c.norm_eps = r.get_float(a + "attention.layer_norm_rms_epsilon");
  c.rope_theta = r.find_float(a + "rope.freq_base").value_or(10000.0);
  if (const GgufValue* t = r.find(a + "rope.scaling.type"))
    if (t->type != GgufValueType::string || t->text != "none")
      fail_input(r.path(), "rope scaling type is not implemented", "none",
                 t->type == GgufValueType::string ? t->text : gguf_value_type_name(t->type));
  if (r.find_float(a + "rope.scaling.factor").value_or(0.0) != 0.0)
    fail_input(r.path(), "linear rope scaling (" + a + "rope.scaling.factor) is not implemented",
               "no rope.scaling.factor", std::to_string(r.get_float(a + "rope.scaling.factor")));
  if (r.find_float("kiln.rope_scaling.factor")) {
    c.rope_scaling.factor = r.get_float("kiln.rope_scaling.factor");
    c.rope_scaling.low_freq_factor = r.get_float("kiln.rope_scaling.low_freq_factor");
    c.rope_scaling.high_freq_factor = r.get_float("kiln.rope_scaling.high_freq_factor");
    c.rope_scaling.original_max_position_embeddings =
        positive(r, "kiln.rope_scaling.original_max_position_embeddings");
  }
  const GgufTensorInfo* embd = r.find_tensor("token_embd.weight");
  if (!embd || embd->dims.size() != 2)
    fail_input(r.path(), "tensor \"token_embd.weight\" is missing or not a matrix",
               std::to_string(c.dim) + " x vocab", embd ? gguf_dims_string(embd->dims) : "nothing");
  c.vocab_size = int(std::min<int64_t>(embd->dims[1], int64_t(1) << 30));
  if (auto v = r.find_uint(a + "vocab_size"); v && *v != uint64_t(c.vocab_size))
    fail_input(r.path(), "metadata \"" + a + "vocab_size\" disagrees with token_embd.weight",
               std::to_string(c.vocab_size), std::to_string(*v));
  if (const GgufValue* tokens = r.find("tokenizer.ggml.tokens");
      tokens && tokens->array_size() != size_t(c.vocab_size))
    fail_input(r.path(), "tokenizer.ggml.tokens has another length than token_embd.weight's vocabulary",
               std::to_string(c.vocab_size), std::to_string(tokens->array_size()));
  c.tie_embeddings = r.find_tensor("output.weight") == nullptr;
  c.qkv_bias = arch == "qwen2" || (arch == "llama" && r.find_tensor("blk.0.attn_q.bias"));
  c.qk_norm = arch == "qwen3";
  c.validate(r.path());
  return c;
}


// Llama 3 scaling parameters that reproduce llama.cpp's per-frequency divisors g_i
// (rope_freqs.weight, theta_i = base^(-2i/D) / g_i, as its converter writes them).
// With wavelength w_i = 2 pi / base^(-2i/D) and original context O, Llama 3 has
// g = 1 for w < O / high, g = factor for w > O / low, and in between
// 1 / g = (1 - s) / factor + s with s = (O / w - low) / (high - low), linear in
// 1 / w: s = A / w + B with A = O / (high - low), B = -low / (high - low). Only
// O / low and O / high matter, so O is taken as 8192 (Llama 3's) and low, high
// follow from A and B fitted through two interpolated frequencies. The caller
// checks that every factor is reproduced.
ModelConfig::RopeScaling fit_llama3_scaling(const std::vector<float>& g, const ModelConfig& c,
                                            const std::string& path) {
  const double pi = 3.14159265358979323846;
  double factor = 1;
  for (float v : g) factor = std::max(factor, double(v));
  std::vector<std::pair<double, double>> smooth;  // (1 / w, s)
  for (size_t i = 0; i < g.size(); ++i) {
    const double v = g[i];
    if (std::fabs(v - 1) < 1e-6 || std::fabs(v - factor) < 1e-6 * factor) continue;
    const double inv_w = std::pow(c.rope_theta, -2.0 * double(i) / c.head_dim) / (2 * pi);
    smooth.emplace_back(inv_w, (1 / v - 1 / factor) / (1 - 1 / factor));
  }
  if (factor <= 1 || smooth.size() < 2)
    fail_input(path, "tensor \"rope_freqs.weight\" is not Llama 3 rope scaling kiln can recover",
               "factors 1 .. factor with at least two interpolated frequencies",
               std::to_string(smooth.size()) + " interpolated, max factor " + std::to_string(factor));
  const auto [x0, s0] = smooth.front();
  const auto [x1, s1] = smooth.back();
  const double A = (s1 - s0) / (x1 - x0), B = s0 - A * x0;
  ModelConfig::RopeScaling out;
  out.factor = factor;
  out.original_max_position_embeddings = 8192;
  out.low_freq_factor = -B * 8192 / A;
  out.high_freq_factor = (1 - B) * 8192 / A;
  if (!(A > 0) || !(out.low_freq_factor > 0) || !(out.high_freq_factor > out.low_freq_factor))
    fail_input(path, "tensor \"rope_freqs.weight\" is not Llama 3 rope scaling",
               "factors rising from 1 to the scale factor with the wavelength", "another shape");
  return out;
}
}  // namespace

GgufModel load_gguf_model(const std::string& path) {
  GgufReader r(path);
  GgufModel m;
  m.config = config_from_gguf(r);
  const ModelConfig& c = m.config;
  const ParamLayout layout(c);
  m.params.assign(size_t(layout.total()), 0.0f);
  std::set<std::string> expected;
  std::vector<float> buffer;
  for (const ParamInfo& p : layout.params()) {
    const std::string name = gguf_name(p.name);
    expected.insert(name);
    const GgufTensorInfo* t = r.find_tensor(name);
    if (!t)
      fail_input(path, "tensor \"" + name + "\" is missing", gguf_dims_string(reversed(p.shape)),
                 "nothing");
    if (t->dims != reversed(p.shape))
      fail_input(path, "tensor \"" + name + "\" has the wrong shape for the metadata",
                 gguf_dims_string(reversed(p.shape)), gguf_dims_string(t->dims));
    float* dst = m.params.data() + p.offset;
    if (const int heads = rope_heads(p.name, c, c.model_type)) {
      buffer.resize(size_t(p.numel()));
      r.read_f32(*t, buffer.data());
      llama2c_rows_to_hf(buffer.data(), dst, heads, c.head_dim, p.shape.size() == 2 ? p.shape[1] : 1);
    } else {
      r.read_f32(*t, dst);
    }
    check_finite(path, name, dst, p.numel());
  }
  if (const GgufTensorInfo* t = r.find_tensor("rope_freqs.weight")) {
    const int64_t half = c.head_dim / 2;
    if (t->dims != std::vector<int64_t>{half} || t->type != GgmlType::f32)
      fail_input(path, "tensor \"rope_freqs.weight\" has the wrong shape or type",
                 gguf_dims_string({half}) + " F32",
                 gguf_dims_string(t->dims) + " " + ggml_type_name(t->type));
    std::vector<float> got(static_cast<size_t>(half));
    r.read_f32(*t, got.data());
    // A file from llama.cpp's converter has the factors only: recover the parameters.
    if (!c.has_rope_scaling()) {
      m.config.rope_scaling = fit_llama3_scaling(got, c, path);
      m.config.validate(path);
    }
    const std::vector<float> want = rope_freq_factors(c);
    for (size_t i = 0; i < want.size(); ++i)
      if (std::fabs(got[i] - want[i]) > 1e-6f * std::fabs(want[i]))
        fail_input(path, "tensor \"rope_freqs.weight\" is not Llama 3 rope scaling (or disagrees with kiln.rope_scaling.*) at " + s(int64_t(i)),
                   std::to_string(want[i]), std::to_string(got[i]));
    expected.insert("rope_freqs.weight");
  }
  for (const GgufTensorInfo& t : r.tensors())
    if (!expected.count(t.name))
      fail_input(path, "unexpected tensor \"" + t.name + "\"",
                 "only the tensors of a " + c.model_type + " model", t.name + " " + gguf_dims_string(t.dims));
  return m;
}

}  // namespace kiln
