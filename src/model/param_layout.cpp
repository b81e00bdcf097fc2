#include "model/param_layout.h"

#include <cmath>

#include "core/rng.h"

namespace kiln {

int64_t ParamInfo::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

int64_t ParamLayout::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  ParamInfo info;
  info.name = name;
  info.offset = total_;
  info.shape = std::move(shape);
  info.decay = decay;
  total_ += info.numel();
  params_.push_back(info);
  return info.offset;
}

ParamLayout::ParamLayout(const ModelConfig& c) {
  const int64_t C = c.dim, V = c.vocab_size, F = c.hidden_dim;
  embedding_ = add("model.embed_tokens.weight", {V, C}, true);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerOffsets o;
    o.attn_norm = add(p + "input_layernorm.weight", {C}, false);
    o.wqkv = add(p + "self_attn.q_proj.weight", {c.q_dim(), C}, true);
    add(p + "self_attn.k_proj.weight", {c.kv_dim(), C}, true);
    add(p + "self_attn.v_proj.weight", {c.kv_dim(), C}, true);
    if (c.qkv_bias) {
      o.bqkv = add(p + "self_attn.q_proj.bias", {c.q_dim()}, false);
      add(p + "self_attn.k_proj.bias", {c.kv_dim()}, false);
      add(p + "self_attn.v_proj.bias", {c.kv_dim()}, false);
    }
    if (c.qk_norm) {
      o.q_norm = add(p + "self_attn.q_norm.weight", {c.head_dim}, false);
      o.k_norm = add(p + "self_attn.k_norm.weight", {c.head_dim}, false);
    }
    o.wo = add(p + "self_attn.o_proj.weight", {C, c.q_dim()}, true);
    o.ffn_norm = add(p + "post_attention_layernorm.weight", {C}, false);
    o.w13 = add(p + "mlp.gate_proj.weight", {F, C}, true);
    add(p + "mlp.up_proj.weight", {F, C}, true);
    o.w2 = add(p + "mlp.down_proj.weight", {C, F}, true);
    layers_.push_back(o);
  }
  final_norm_ = add("model.norm.weight", {C}, false);
  classifier_ = c.tie_embeddings ? embedding_ : add("lm_head.weight", {V, C}, true);
}

const ParamInfo* ParamLayout::find(const std::string& name) const {
  for (const auto& p : params_)
    if (p.name == name) return &p;
  return nullptr;
}

void init_params(const ModelConfig& config, const ParamLayout& layout, uint64_t seed,
                 float* params) {
  const float std_base = 0.02f;
  const float std_residual = 0.02f / std::sqrt(2.0f * config.n_layers);
  for (size_t i = 0; i < layout.params().size(); ++i) {
    const ParamInfo& p = layout.params()[i];
    float* w = params + p.offset;
    if (p.shape.size() == 1) {
      const float value = p.name.ends_with(".bias") ? 0.0f : 1.0f;  // norms 1, biases 0
      for (int64_t j = 0; j < p.numel(); ++j) w[j] = value;
      continue;
    }
    const bool residual = p.name.ends_with("o_proj.weight") || p.name.ends_with("down_proj.weight");
    // One stream per tensor: the values of a tensor do not depend on the others' sizes.
    Rng rng(seed, i + 1);
    const float sd = residual ? std_residual : std_base;
    for (int64_t j = 0; j < p.numel(); ++j) w[j] = sd * rng.normal();
  }
}

}  // namespace kiln
