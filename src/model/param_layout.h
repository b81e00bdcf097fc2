// Every parameter of the model as a named view into ONE flat buffer.
//
// Grads and the AdamW moments use the same layout, so the optimizer, the grad
// norm, checkpoints (and later an all-reduce) each walk one buffer. Names are
// Hugging Face's. Within a layer the projections that share an input are
// adjacent, so one GEMM serves them:
//   q_proj | k_proj | v_proj   -> one [H*D + 2*Hkv*D, C] matrix ("wqkv")
//   gate_proj | up_proj        -> one [2*hidden, C] matrix ("w13"; gate = W1, up = W3)
//   q_proj | k_proj | v_proj biases (Qwen2) -> one [H*D + 2*Hkv*D] vector ("bqkv")
// All matrices are row-major [out_features, in_features], as in PyTorch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"

namespace kiln {

struct ParamInfo {
  std::string name;            // "model.layers.3.self_attn.q_proj.weight"
  int64_t offset = 0;          // in elements from the start of the buffer
  std::vector<int64_t> shape;  // [rows, cols] or [n]
  bool decay = false;          // weight decay applies (matrices yes, norms and biases no)
  int64_t numel() const;
};

// Offsets (in elements) of one layer's tensors.
struct LayerOffsets {
  int64_t attn_norm;  // [C]                      input_layernorm.weight
  int64_t wqkv;       // [H*D + 2*Hkv*D, C]       q_proj | k_proj | v_proj
  int64_t bqkv = -1;  // [H*D + 2*Hkv*D]          q_proj.bias | k_proj.bias | v_proj.bias (qkv_bias)
  int64_t q_norm = -1;  // [D]                    q_norm.weight (qk_norm)
  int64_t k_norm = -1;  // [D]                    k_norm.weight (qk_norm)
  int64_t wo;           // [C, H*D]                 o_proj
  int64_t ffn_norm;     // [C]                      post_attention_layernorm.weight
  int64_t w13;          // [2*hidden, C]            gate_proj | up_proj
  int64_t w2;           // [C, hidden]              down_proj
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& config);

  int64_t total() const { return total_; }  // elements in the flat buffer
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo* find(const std::string& name) const;

  int64_t embedding() const { return embedding_; }    // [V, C] model.embed_tokens.weight
  int64_t final_norm() const { return final_norm_; }  // [C]    model.norm.weight
  int64_t classifier() const {
    return classifier_;
  }  // [V, C] lm_head.weight (== embedding when tied)
  const LayerOffsets& layer(int l) const { return layers_[l]; }

 private:
  int64_t add(const std::string& name, std::vector<int64_t> shape, bool decay);
  std::vector<ParamInfo> params_;
  std::vector<LayerOffsets> layers_;
  int64_t total_ = 0, embedding_ = 0, final_norm_ = 0, classifier_ = 0;
};

// Seeded init as llama2.c's model.py: every matrix normal(0, 0.02), the residual
// output projections (o_proj, down_proj) normal(0, 0.02 / sqrt(2 * n_layers)),
// norms 1, biases 0. Deterministic for a seed on every machine.
void init_params(const ModelConfig& config, const ParamLayout& layout, uint64_t seed,
                 float* params);

}  // namespace kiln
