#include "nn/blocks.h"

namespace kiln {

const void* compute_tensor(const WeightsView& w, DType dt, int64_t offset) {
  return static_cast<const char*>(w.params_compute) + offset * int64_t(dtype_size(dt));
}

LayerWeights layer_weights(const ModelConfig& config, const ParamLayout& layout,
                           const WeightsView& w, DType dt, int layer) {
  const LayerOffsets& o = layout.layer(layer);
  LayerWeights lw;
  lw.attn_norm = w.params + o.attn_norm;
  lw.wqkv = compute_tensor(w, dt, o.wqkv);
  if (config.qkv_bias) lw.bqkv = w.params + o.bqkv;
  if (config.qk_norm) {
    lw.q_norm = w.params + o.q_norm;
    lw.k_norm = w.params + o.k_norm;
  }
  lw.wo = compute_tensor(w, dt, o.wo);
  lw.ffn_norm = w.params + o.ffn_norm;
  lw.w13 = compute_tensor(w, dt, o.w13);
  lw.w2 = compute_tensor(w, dt, o.w2);
  return lw;
}

void qkv_block_forward(Backend& backend, const ModelConfig& config, DType dt,
                       const LayerWeights& w, const float* x, int64_t N, void* xn, float* rstd,
                       float* qkv_pre, float* qk_rstd, float* qkv) {
  const int C = config.dim, QKV = config.qkv_dim();
  const float eps = float(config.norm_eps);
  backend.rmsnorm_forward(xn, dt, rstd, x, w.attn_norm, N, C, eps);
  float* projected = config.qk_norm ? qkv_pre : qkv;
  backend.matmul(projected, xn, w.wqkv, dt, N, QKV, C, false, true, false);
  if (config.qkv_bias) backend.bias_forward(projected, w.bqkv, N, QKV);
  if (config.qk_norm)
    backend.head_rmsnorm_forward(qkv, qk_rstd, projected, w.q_norm, w.k_norm, N, config.n_heads,
                                 config.n_kv_heads, config.head_dim, eps);
}

void attention_output(Backend& backend, const ModelConfig& config, DType dt,
                      const LayerWeights& w, const float* att, void* att_c, const float* x_in,
                      float* x_out, int64_t N) {
  const int C = config.dim, Q = config.q_dim();
  if (att_c != static_cast<const void*>(att)) backend.cast(att_c, dt, att, N * Q);
  if (x_out != x_in) backend.copy(x_out, x_in, N * C * sizeof(float));
  backend.matmul(x_out, att_c, w.wo, dt, N, C, Q, false, true, true);
}

void ffn_block_forward(Backend& backend, const ModelConfig& config, DType dt,
                       const LayerWeights& w, const float* x_in, float* x_out, int64_t N,
                       void* xn, float* rstd, float* h13, void* g) {
  const int C = config.dim, F = config.hidden_dim;
  backend.rmsnorm_forward(xn, dt, rstd, x_in, w.ffn_norm, N, C, float(config.norm_eps));
  backend.matmul(h13, xn, w.w13, dt, N, 2 * F, C, false, true, false);
  backend.swiglu_forward(g, dt, h13, N, F);
  if (x_out != x_in) backend.copy(x_out, x_in, N * C * sizeof(float));
  backend.matmul(x_out, g, w.w2, dt, N, C, F, false, true, true);
}

}  // namespace kiln
