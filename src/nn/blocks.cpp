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
  if (w.int8 != nullptr) {
    const Int8Matrix* q = w.int8 + 4 * int64_t(layer);
    lw.wqkv_q = q[0];
    lw.wo_q = q[1];
    lw.w13_q = q[2];
    lw.w2_q = q[3];
  }
  return lw;
}

void linear_forward(Backend& backend, DType dt, float* y, const void* x, const void* w,
                    const Int8Matrix& q, int64_t N, int64_t out, int64_t in, bool accumulate) {
  if (q.q != nullptr)
    backend.linear_int8(y, static_cast<const float*>(x), q.q, q.scale, N, out, in, accumulate);
  else
    backend.matmul(y, x, w, dt, N, out, in, false, true, accumulate);
}

void qkv_block_forward(Backend& backend, const ModelConfig& config, DType dt,
                       const LayerWeights& w, const float* x, int64_t N, void* xn, float* rstd,
                       float* qkv_pre, float* qk_rstd, float* qkv) {
  const int C = config.dim, QKV = config.qkv_dim();
  const float eps = float(config.norm_eps);
  backend.rmsnorm_forward(xn, dt, rstd, x, w.attn_norm, N, C, eps);
  float* projected = config.qk_norm ? qkv_pre : qkv;
  linear_forward(backend, dt, projected, xn, w.wqkv, w.wqkv_q, N, QKV, C, false);
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
  linear_forward(backend, dt, x_out, att_c, w.wo, w.wo_q, N, C, Q, true);
}

void ffn_block_forward(Backend& backend, const ModelConfig& config, DType dt,
                       const LayerWeights& w, const float* x_in, float* x_out, int64_t N,
                       void* xn, float* rstd, float* h13, void* g) {
  const int C = config.dim, F = config.hidden_dim;
  backend.rmsnorm_forward(xn, dt, rstd, x_in, w.ffn_norm, N, C, float(config.norm_eps));
  linear_forward(backend, dt, h13, xn, w.w13, w.w13_q, N, 2 * F, C, false);
  backend.swiglu_forward(g, dt, h13, N, F);
  if (x_out != x_in) backend.copy(x_out, x_in, N * C * sizeof(float));
  linear_forward(backend, dt, x_out, g, w.w2, w.w2_q, N, C, F, true);
}

}  // namespace kiln
