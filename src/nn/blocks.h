// The forward blocks of a Llama-family layer, written once against backend.h and
// used by both the training step (nn/model_step.cpp) and the KV-cache decoder
// (nn/decoder.cpp): what differs between them is only how attention finds its
// keys (the whole sequence in the batch, or a cache) and which activations are kept.
//
//   qkv_block_forward:   xn = rmsnorm(x) * attn_norm;  qkv = xn Wqkv^T (+ bqkv);
//                        qk_norm: per-head RMSNorm of the q and k heads
//                        (qkv as attention wants it, before RoPE)
//   attention_output:    x_out = x_in + att Wo^T
//   ffn_block_forward:   x_out = x_in + (silu(xn W1^T) * (xn W3^T)) W2^T, xn = rmsnorm(x_in)
// N rows, C = dim, F = hidden_dim, QKV = (H + 2*Hkv) * D; `dt` is the compute dtype of
// the GEMM operands (xn, att_c, g are written in it).
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "model/config.h"
#include "model/param_layout.h"

namespace kiln {

// A weight matrix in int8 (backend/int8_weights.h), backend memory.
struct Int8Matrix {
  const uint8_t* q = nullptr;
  const float* scale = nullptr;
};

// The model's weights as the step sees them: fp32 masters (embedding lookup,
// norms, biases) and the compute-dtype copy the GEMMs read (== params when fp32).
// Inference may replace the GEMM weights by int8 copies (then the compute dtype is
// fp32): int8[4 l + i] is layer l's wqkv, wo, w13, w2 (i = 0..3), int8[4 L] the
// classifier.
struct WeightsView {
  const float* params = nullptr;         // [layout.total()] fp32, backend memory
  const void* params_compute = nullptr;  // [layout.total()] compute dtype, backend memory
  const Int8Matrix* int8 = nullptr;      // host array, [4 L + 1]; null: no int8 weights
};

// One layer's tensors inside a WeightsView.
struct LayerWeights {
  const float* attn_norm = nullptr;
  const void* wqkv = nullptr;        // compute dtype
  const float* bqkv = nullptr;       // qkv_bias only
  const float* q_norm = nullptr;     // qk_norm only
  const float* k_norm = nullptr;     // qk_norm only
  const void* wo = nullptr;          // compute dtype
  const float* ffn_norm = nullptr;
  const void* w13 = nullptr;         // compute dtype
  const void* w2 = nullptr;          // compute dtype
  // The int8 copies where the view has them (q null otherwise).
  Int8Matrix wqkv_q, wo_q, w13_q, w2_q;
};

// A tensor of the compute copy at `offset` elements.
const void* compute_tensor(const WeightsView& w, DType dt, int64_t offset);
LayerWeights layer_weights(const ModelConfig& config, const ParamLayout& layout,
                           const WeightsView& w, DType dt, int layer);

// y [N, out] (= or +=) x [N, in] W^T: through the int8 copy where q is set (x is
// then fp32), else a GEMM in dt.
void linear_forward(Backend& backend, DType dt, float* y, const void* x, const void* w,
                    const Int8Matrix& q, int64_t N, int64_t out, int64_t in, bool accumulate);

// xn [N, C] (=, dt), rstd [N] (=); qkv [N, QKV] (=). With qk_norm, qkv_pre [N, QKV]
// (=) holds the projection before the head norms and qk_rstd [N, H + Hkv] (=)
// their rstd; otherwise both may be null and the projection goes straight to qkv.
void qkv_block_forward(Backend& backend, const ModelConfig& config, DType dt,
                       const LayerWeights& w, const float* x, int64_t N, void* xn, float* rstd,
                       float* qkv_pre, float* qk_rstd, float* qkv);

// x_out [N, C] (=) x_in + att Wo^T. att [N, H*D] fp32; att_c is its compute-dtype
// copy (written here when dt is not fp32; may equal att when it is). x_out may
// equal x_in (the residual is then updated in place).
void attention_output(Backend& backend, const ModelConfig& config, DType dt,
                      const LayerWeights& w, const float* att, void* att_c, const float* x_in,
                      float* x_out, int64_t N);

// x_out [N, C] (=) x_in + FFN(rmsnorm(x_in)); xn [N, C] (=, dt), rstd [N] (=),
// h13 [N, 2F] (=), g [N, F] (=, dt) are kept for a backward. x_out may equal x_in.
void ffn_block_forward(Backend& backend, const ModelConfig& config, DType dt,
                       const LayerWeights& w, const float* x_in, float* x_out, int64_t N,
                       void* xn, float* rstd, float* h13, void* g);

}  // namespace kiln
