#include "nn/model_step.h"

#include "core/error.h"

namespace kiln {

ModelStep::ModelStep(Backend& backend, const ModelConfig& config, int B, int T)
    : backend_(backend),
      config_(config),
      layout_(config),
      B_(B),
      T_(T),
      dt_(backend.compute_dtype()) {
  if (B <= 0) fail_input("--batch", "batch size must be positive", "> 0", std::to_string(B));
  if (T <= 0) fail_input("--seq", "sequence length must be positive", "> 0", std::to_string(T));
  if (T > config.max_seq_len)
    fail_input("--seq", "sequence length exceeds the model's max_seq_len",
               "<= " + std::to_string(config.max_seq_len), std::to_string(T));
  const int64_t N = int64_t(B) * T, C = config.dim, F = config.hidden_dim, L = config.n_layers;
  const int64_t QKV = config.qkv_dim(), Q = config.q_dim();
  const size_t f = sizeof(float), c = dtype_size(dt_);
  const bool cast_needed = dt_ != DType::f32;

  tokens_ = static_cast<int32_t*>(buffer(N * sizeof(int32_t)));
  targets_ = static_cast<int32_t*>(buffer(N * sizeof(int32_t)));
  for (int64_t l = 0; l <= L; ++l) res_.push_back(static_cast<float*>(buffer(N * C * f)));
  for (int64_t l = 0; l < L; ++l) {
    res_mid_.push_back(static_cast<float*>(buffer(N * C * f)));
    attn_rstd_.push_back(static_cast<float*>(buffer(N * f)));
    ffn_rstd_.push_back(static_cast<float*>(buffer(N * f)));
    xn_attn_.push_back(buffer(N * C * c));
    xn_ffn_.push_back(buffer(N * C * c));
    qkv_.push_back(static_cast<float*>(buffer(N * QKV * f)));
    if (config.qk_norm) {
      qkv_pre_.push_back(static_cast<float*>(buffer(N * QKV * f)));
      qk_rstd_.push_back(static_cast<float*>(buffer(N * (config.n_heads + config.n_kv_heads) * f)));
    }
    att_.push_back(static_cast<float*>(buffer(N * Q * f)));
    att_c_.push_back(cast_needed ? buffer(N * Q * c) : att_.back());
    lse_.push_back(static_cast<float*>(buffer(int64_t(B) * config.n_heads * T * f)));
    h13_.push_back(static_cast<float*>(buffer(N * 2 * F * f)));
    g_.push_back(buffer(N * F * c));
  }
  xf_ = buffer(N * C * c);
  final_rstd_ = static_cast<float*>(buffer(N * f));
  losses_ = static_cast<float*>(buffer(N * f));

  d_res_ = static_cast<float*>(buffer(N * C * f));
  d_res_c_ = cast_needed ? buffer(N * C * c) : d_res_;
  d_xn_ = static_cast<float*>(buffer(N * C * f));
  dxf_ = static_cast<float*>(buffer(N * C * f));
  d_att_ = static_cast<float*>(buffer(N * Q * f));
  dqkv_ = static_cast<float*>(buffer(N * QKV * f));
  dqkv_c_ = cast_needed ? buffer(N * QKV * c) : dqkv_;
  dg_ = static_cast<float*>(buffer(N * F * f));
  dh13_ = static_cast<float*>(buffer(N * 2 * F * f));
  dh13_c_ = cast_needed ? buffer(N * 2 * F * c) : dh13_;
  losses_host_.resize(N);
}

void ModelStep::set_compact_vocab(const std::vector<int32_t>& used_ids) {
  const int V = config_.vocab_size, C = config_.dim;
  if (used_ids.empty())
    fail_input("--compact-vocab", "the training data uses no tokens", "> 0 tokens", "0");
  full_to_compact_.assign(V, -1);
  for (size_t i = 0; i < used_ids.size(); ++i) {
    const int32_t id = used_ids[i];
    if (id < 0 || id >= V || (i > 0 && id <= used_ids[i - 1]))
      fail_input("--compact-vocab", "used token ids must be sorted, distinct and < vocab_size",
                 "< " + std::to_string(V), std::to_string(id));
    full_to_compact_[id] = int32_t(i);
  }
  compact_V_ = int(used_ids.size());
  compact_rows_ = static_cast<int32_t*>(buffer(compact_V_ * sizeof(int32_t)));
  backend_.upload(compact_rows_, used_ids.data(), compact_V_ * sizeof(int32_t));
  compact_w_ = static_cast<float*>(buffer(int64_t(compact_V_) * C * sizeof(float)));
  compact_w_c_ = dt_ == DType::f32 ? static_cast<void*>(compact_w_)
                                   : buffer(int64_t(compact_V_) * C * dtype_size(dt_));
  compact_dw_ = static_cast<float*>(buffer(int64_t(compact_V_) * C * sizeof(float)));
  targets_host_.resize(int64_t(B_) * T_);
}

ModelStep::~ModelStep() {
  for (void* p : owned_) backend_.release(p);
}

void* ModelStep::buffer(size_t bytes) {
  void* p = backend_.alloc(bytes);
  owned_.push_back(p);
  activation_bytes_ += bytes;
  return p;
}

const void* ModelStep::compute_weight(const WeightsView& w, int64_t offset) const {
  return compute_tensor(w, dt_, offset);
}

float ModelStep::forward_backward(const WeightsView& weights, float* grads, const int32_t* tokens,
                                  const int32_t* targets, float grad_scale) {
  const float loss = forward(weights, tokens, targets, grads, grad_scale);
  backward(weights, grads);
  return loss;
}

float ModelStep::forward_loss(const WeightsView& weights, const int32_t* tokens,
                              const int32_t* targets) {
  return forward(weights, tokens, targets, nullptr, 0.0f);
}

// Forward pass; when grads is not null the fused classifier also produces
// dxf and accumulates the classifier's weight gradient.
float ModelStep::forward(const WeightsView& w, const int32_t* tokens, const int32_t* targets,
                         float* grads, float grad_scale) {
  const int64_t N = int64_t(B_) * T_;
  const int C = config_.dim, V = config_.vocab_size;
  const int H = config_.n_heads, Hkv = config_.n_kv_heads, D = config_.head_dim;
  const float eps = float(config_.norm_eps);
  int64_t valid = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V)
      fail_input("batch", "token id out of range at position " + std::to_string(i),
                 "< " + std::to_string(V), std::to_string(tokens[i]));
    if (targets[i] >= V)
      fail_input("batch", "target id out of range at position " + std::to_string(i),
                 "< " + std::to_string(V), std::to_string(targets[i]));
    valid += targets[i] >= 0;
  }
  if (compact_V_ > 0) {
    // Compact classifier: remap targets, gather the used rows of the classifier.
    valid = 0;
    for (int64_t i = 0; i < N; ++i) {
      targets_host_[i] = targets[i] >= 0 ? full_to_compact_[targets[i]] : -1;
      if (targets[i] >= 0 && targets_host_[i] < 0) ++dropped_targets_;
      valid += targets_host_[i] >= 0;
    }
    targets = targets_host_.data();
    backend_.embedding_forward(compact_w_, compact_rows_, w.params + layout_.classifier(),
                               compact_V_, C);
    if (compact_w_c_ != compact_w_)
      backend_.cast(compact_w_c_, dt_, compact_w_, int64_t(compact_V_) * C);
  }
  backend_.upload(tokens_, tokens, N * sizeof(int32_t));
  backend_.upload(targets_, targets, N * sizeof(int32_t));

  // x = embed[token]
  backend_.embedding_forward(res_[0], tokens_, w.params + layout_.embedding(), N, C);
  for (int l = 0; l < config_.n_layers; ++l) {
    const LayerWeights lw = layer_weights(config_, layout_, w, dt_, l);
    // Attention block: x_mid = x + Wo · attn(rope(qkv(rmsnorm(x))))
    qkv_block_forward(backend_, config_, dt_, lw, res_[l], N, xn_attn_[l], attn_rstd_[l],
                      config_.qk_norm ? qkv_pre_[l] : nullptr,
                      config_.qk_norm ? qk_rstd_[l] : nullptr, qkv_[l]);
    backend_.rope_forward(qkv_[l], B_, T_, H, Hkv, D, config_.rope(), 0);
    backend_.attention_forward(att_[l], lse_[l], qkv_[l], B_, T_, H, Hkv, D);
    attention_output(backend_, config_, dt_, lw, att_[l], att_c_[l], res_[l], res_mid_[l], N);
    // FFN block: x_next = x_mid + W2 · (silu(W1 · xn) * (W3 · xn)), xn = rmsnorm(x_mid)
    ffn_block_forward(backend_, config_, dt_, lw, res_mid_[l], res_[l + 1], N, xn_ffn_[l],
                      ffn_rstd_[l], h13_[l], g_[l]);
  }
  backend_.rmsnorm_forward(xf_, dt_, final_rstd_, res_[config_.n_layers],
                           w.params + layout_.final_norm(), N, C, eps);
  // Mean over valid targets, times the caller's scale (1/accum).
  const float dloss = valid > 0 ? grad_scale / float(valid) : 0.0f;
  if (compact_V_ > 0) {
    if (grads) backend_.zero(compact_dw_, int64_t(compact_V_) * C * sizeof(float));
    backend_.classifier_forward_backward(losses_, grads ? dxf_ : nullptr,
                                         grads ? compact_dw_ : nullptr, xf_, compact_w_c_, dt_,
                                         targets_, N, C, compact_V_, dloss);
    // Scatter the compact classifier's gradient back to its rows (ids are distinct).
    if (grads)
      backend_.embedding_backward(grads + layout_.classifier(), compact_rows_, compact_dw_,
                                  compact_V_, C);
  } else {
    backend_.classifier_forward_backward(
        losses_, grads ? dxf_ : nullptr, grads ? grads + layout_.classifier() : nullptr, xf_,
        compute_weight(w, layout_.classifier()), dt_, targets_, N, C, V, dloss);
  }
  backend_.download(losses_host_.data(), losses_, N * sizeof(float));
  double sum = 0;
  for (int64_t i = 0; i < N; ++i) sum += losses_host_[i];
  return valid > 0 ? float(sum / double(valid)) : 0.0f;
}

// Backward through the layers in reverse. d_res_ carries dL/dx for the
// residual stream; every weight gradient accumulates (+=) into grads.
void ModelStep::backward(const WeightsView& w, float* grads) {
  const int64_t N = int64_t(B_) * T_;
  const int C = config_.dim, F = config_.hidden_dim;
  const int H = config_.n_heads, Hkv = config_.n_kv_heads, D = config_.head_dim;
  const int QKV = config_.qkv_dim(), Q = config_.q_dim();
  const bool cast_needed = dt_ != DType::f32;

  backend_.zero(d_res_, N * C * sizeof(float));
  backend_.rmsnorm_backward(d_res_, grads + layout_.final_norm(), dxf_, res_[config_.n_layers],
                            w.params + layout_.final_norm(), final_rstd_, N, C);
  for (int l = config_.n_layers - 1; l >= 0; --l) {
    const LayerOffsets& o = layout_.layer(l);
    // FFN block. dY = d_res (the residual passes it through unchanged as well).
    if (cast_needed) backend_.cast(d_res_c_, dt_, d_res_, N * C);
    backend_.matmul(grads + o.w2, d_res_c_, g_[l], dt_, C, F, N, true, false,
                    true);  // dW2 += dY^T g
    backend_.matmul(dg_, d_res_c_, compute_weight(w, o.w2), dt_, N, F, C, false, false, false);
    backend_.swiglu_backward(dh13_, dg_, h13_[l], N, F);
    if (cast_needed) backend_.cast(dh13_c_, dt_, dh13_, N * 2 * F);
    backend_.matmul(grads + o.w13, dh13_c_, xn_ffn_[l], dt_, 2 * F, C, N, true, false, true);
    backend_.matmul(d_xn_, dh13_c_, compute_weight(w, o.w13), dt_, N, C, 2 * F, false, false,
                    false);
    backend_.rmsnorm_backward(d_res_, grads + o.ffn_norm, d_xn_, res_mid_[l], w.params + o.ffn_norm,
                              ffn_rstd_[l], N, C);
    // Attention block.
    if (cast_needed) backend_.cast(d_res_c_, dt_, d_res_, N * C);
    backend_.matmul(grads + o.wo, d_res_c_, att_c_[l], dt_, C, Q, N, true, false, true);
    backend_.matmul(d_att_, d_res_c_, compute_weight(w, o.wo), dt_, N, Q, C, false, false, false);
    backend_.attention_backward(dqkv_, d_att_, qkv_[l], att_[l], lse_[l], B_, T_, H, Hkv, D);
    backend_.rope_backward(dqkv_, B_, T_, H, Hkv, D, config_.rope(), 0);
    if (config_.qk_norm)  // dqkv: d(normed q, k) -> d(q, k before the norm)
      backend_.head_rmsnorm_backward(dqkv_, grads + o.q_norm, grads + o.k_norm, qkv_pre_[l],
                                     w.params + o.q_norm, w.params + o.k_norm, qk_rstd_[l], N, H,
                                     Hkv, D);
    if (config_.qkv_bias)
      backend_.bias_backward(grads + o.bqkv, dqkv_, N, QKV);  // dbias = sum_n dqkv
    if (cast_needed) backend_.cast(dqkv_c_, dt_, dqkv_, N * QKV);
    backend_.matmul(grads + o.wqkv, dqkv_c_, xn_attn_[l], dt_, QKV, C, N, true, false, true);
    backend_.matmul(d_xn_, dqkv_c_, compute_weight(w, o.wqkv), dt_, N, C, QKV, false, false, false);
    backend_.rmsnorm_backward(d_res_, grads + o.attn_norm, d_xn_, res_[l], w.params + o.attn_norm,
                              attn_rstd_[l], N, C);
  }
  backend_.embedding_backward(grads + layout_.embedding(), tokens_, d_res_, N, C);
}

}  // namespace kiln
