// One training step's forward and backward for a Llama-family model, written
// once against backend.h. Every activation buffer is sized from (config, B, T)
// when the step is built, before the first step runs, and reused: nothing is
// allocated inside the step ("compile once, weights are inputs").
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "nn/blocks.h"

namespace kiln {

class ModelStep {
 public:
  ModelStep(Backend& backend, const ModelConfig& config, int B, int T);
  ~ModelStep();
  ModelStep(const ModelStep&) = delete;
  ModelStep& operator=(const ModelStep&) = delete;

  // Forward and backward of one micro-batch. tokens/targets are host arrays
  // [B, T]; a target < 0 is ignored. grads (+=) receive grad_scale times the
  // gradient of the mean loss over valid targets (grad_scale = 1 / accum
  // for gradient accumulation). Returns that mean loss (fp32).
  float forward_backward(const WeightsView& weights, float* grads, const int32_t* tokens,
                         const int32_t* targets, float grad_scale = 1.0f);

  // Forward only: the mean loss over valid targets (for validation).
  float forward_loss(const WeightsView& weights, const int32_t* tokens, const int32_t* targets);

  // Vocabulary compaction: the classifier (and so the softmax) covers only
  // `used_ids` (sorted, distinct), the tokens the training data contains. Targets
  // are remapped to compact ids; a target outside the set is ignored (no loss, no
  // gradient) and counted in compact_dropped_targets(). Embedding rows of all
  // tokens stay trainable inputs; only the classifier's support shrinks.
  void set_compact_vocab(const std::vector<int32_t>& used_ids);
  int compact_vocab_size() const { return compact_V_; }
  int64_t compact_dropped_targets() const { return dropped_targets_; }

  int batch() const { return B_; }
  int seq() const { return T_; }
  size_t activation_bytes() const { return activation_bytes_; }
  const ParamLayout& layout() const { return layout_; }

 private:
  float forward(const WeightsView& weights, const int32_t* tokens, const int32_t* targets,
                float* grads, float grad_scale);
  void backward(const WeightsView& weights, float* grads);
  void* buffer(size_t bytes);
  const void* compute_weight(const WeightsView& w, int64_t offset) const;

  Backend& backend_;
  ModelConfig config_;
  ParamLayout layout_;
  int B_, T_;
  DType dt_;  // compute dtype
  size_t activation_bytes_ = 0;
  std::vector<void*> owned_;

  // Forward activations kept for backward. N = B*T, C = dim, F = hidden_dim.
  int32_t* tokens_ = nullptr;                 // [N]
  int32_t* targets_ = nullptr;                // [N]
  std::vector<float*> res_;                   // L+1 x [N, C] residual stream entering each layer
  std::vector<float*> res_mid_;               // L x [N, C] residual after attention
  std::vector<float*> attn_rstd_, ffn_rstd_;  // L x [N]
  std::vector<void*> xn_attn_, xn_ffn_;       // L x [N, C] (compute dtype) normed GEMM inputs
  std::vector<float*> qkv_;                   // L x [N, H*D + 2*Hkv*D], q and k after RoPE
  std::vector<float*> qkv_pre_;               // qk_norm: L x [N, QKV] before the q/k norms
  std::vector<float*> qk_rstd_;               // qk_norm: L x [N, H + Hkv]
  std::vector<float*> att_;                   // L x [N, H*D] attention output
  std::vector<void*> att_c_;     // L x [N, H*D] (compute dtype; aliases att_ when fp32)
  std::vector<float*> lse_;      // L x [B, H, T]
  std::vector<float*> h13_;      // L x [N, 2F] gate | up
  std::vector<void*> g_;         // L x [N, F] (compute dtype) silu(gate) * up
  void* xf_ = nullptr;           // [N, C] (compute dtype) final-normed
  float* final_rstd_ = nullptr;  // [N]
  float* losses_ = nullptr;      // [N]

  // Backward scratch, shared by all layers.
  float* d_res_ = nullptr;   // [N, C] dL/d(residual stream)
  void* d_res_c_ = nullptr;  // [N, C] compute dtype (aliases d_res_ when fp32)
  float* d_xn_ = nullptr;    // [N, C]
  float* dxf_ = nullptr;     // [N, C]
  float* d_att_ = nullptr;   // [N, H*D]
  float* dqkv_ = nullptr;    // [N, qkv]
  void* dqkv_c_ = nullptr;   // [N, qkv] compute dtype
  float* dg_ = nullptr;      // [N, F]
  float* dh13_ = nullptr;    // [N, 2F]
  void* dh13_c_ = nullptr;   // [N, 2F] compute dtype
  std::vector<float> losses_host_;

  // Vocabulary compaction (compact_V_ == 0: off).
  int compact_V_ = 0;
  std::vector<int32_t> full_to_compact_;  // [V] compact id or -1
  int32_t* compact_rows_ = nullptr;       // [Vc] full ids of the compact classifier rows
  float* compact_w_ = nullptr;            // [Vc, C] gathered fp32 classifier rows
  void* compact_w_c_ = nullptr;           // [Vc, C] compute dtype (aliases compact_w_ when fp32)
  float* compact_dw_ = nullptr;           // [Vc, C] classifier grad before the scatter
  std::vector<int32_t> targets_host_;     // [N] remapped targets
  int64_t dropped_targets_ = 0;
};

}  // namespace kiln
