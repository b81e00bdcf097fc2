// The shape of a Llama-family model. Every size in Kiln comes from here.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace kiln {

struct RopeParams;

struct ModelConfig {
  int dim = 0;          // C: width of the residual stream
  int n_layers = 0;     // L
  int n_heads = 0;      // H: query heads
  int n_kv_heads = 0;   // key/value heads (GQA); divides n_heads
  int head_dim = 0;     // D: per-head width; 0 in JSON means dim / n_heads
  int hidden_dim = 0;   // FFN width (SwiGLU)
  int vocab_size = 0;   // V
  int max_seq_len = 0;  // longest T the model is meant for (RoPE table length)
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_embeddings = false;  // classifier shares model.embed_tokens.weight
  bool qkv_bias = false;        // q/k/v projections have biases (Qwen2; HF attention_bias)
  bool qk_norm = false;         // per-head RMSNorm of q and k before RoPE (Qwen3)
  // HF model_type ("llama", "qwen2", "qwen3", "mistral"): kept so an export loads
  // back in transformers as the same architecture.
  std::string model_type = "llama";
  // rope_scaling of type "llama3" (Llama 3.1/3.2); factor 0 = no scaling.
  struct RopeScaling {
    double factor = 0;
    double low_freq_factor = 0;
    double high_freq_factor = 0;
    int original_max_position_embeddings = 0;
  } rope_scaling;
  std::string name;  // preset name or file it came from, for reports

  bool has_rope_scaling() const { return rope_scaling.factor != 0; }
  RopeParams rope() const;  // theta and rope_scaling, as the rope ops take them

  int q_dim() const { return n_heads * head_dim; }      // H * D
  int kv_dim() const { return n_kv_heads * head_dim; }  // Hkv * D
  int qkv_dim() const { return q_dim() + 2 * kv_dim(); }

  // Throws InputError naming the field when the config cannot describe a model.
  // `where` names the source (a file path or "preset stories15M").
  void validate(const std::string& where) const;

  int64_t num_params() const;  // every parameter, the classifier once when tied
  // Matmul FLOPs of one training step per token (forward + backward = 3 x forward),
  // with causal attention over T tokens counted as half of the full T x T.
  double train_flops_per_token(int T) const;
};

// RoPE frequencies as the backend's rope ops take them: theta and, when
// scaling.factor > 0, Llama 3's rescaling. Implicit from a plain theta.
struct RopeParams {
  double theta = 10000.0;
  ModelConfig::RopeScaling scaling;             // factor 0: none
  RopeParams(double theta_) : theta(theta_) {}  // NOLINT: implicit on purpose
  RopeParams(double theta_, const ModelConfig::RopeScaling& scaling_)
      : theta(theta_), scaling(scaling_) {}
  // Frequency of pair i < D/2: f = theta^(-2i/D); with llama3 scaling, wavelength
  // w = 2 pi / f against the original context O: w < O / high_freq_factor keeps f,
  // w > O / low_freq_factor gives f / factor, and in between
  // (1 - s) f / factor + s f with s = (O / w - low_freq_factor) / (high - low).
  double inv_freq(int i, int D) const;
  // Identity of the frequency table (for caching tables).
  bool same_as(const RopeParams& o) const;
};

// Presets: stories260K, stories15M, stories42M, stories110M, qwen2.5-0.5b,
// qwen3-0.6b, llama-3.2-1b.
std::vector<std::string> preset_names();
bool find_preset(const std::string& name, ModelConfig* config);

// JSON in Kiln's own field names, or a Hugging Face config.json (hidden_size,
// num_hidden_layers, ...): both are accepted on reading. HF model_type selects
// the architecture (qwen2: q/k/v biases; qwen3: q/k norms); a field that would
// change the math in a way Kiln does not implement (sliding window in use, MoE,
// rope_scaling other than llama3, hidden_act other than silu, mlp_bias) throws
// InputError naming the field.
ModelConfig config_from_json(const nlohmann::json& j, const std::string& where);
nlohmann::json config_to_json(const ModelConfig& config);  // Kiln field names
// HF config.json of the config's model_type (LlamaForCausalLM, Qwen2ForCausalLM, ...).
nlohmann::json config_to_hf_json(const ModelConfig& config);
ModelConfig load_config_file(const std::string& path);  // reads + validates

// "stories15M" -> preset; "*.json" -> file. Throws InputError otherwise.
ModelConfig resolve_config(const std::string& preset_or_path);

}  // namespace kiln
