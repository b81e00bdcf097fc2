#include "reference/ref_generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"

namespace kiln::ref {
namespace {

// y[rows] (= or += when accumulate) W x, W [rows, cols] row-major, x [cols].
// Decoding one token is memory bound (every weight is read once per token), so
// the point is to stream W at full bandwidth: rows are split over threads, each
// row is one SIMD reduction. One thread owns each y[r], so the result does not
// depend on the thread count. Products under kParallelMacs multiply-adds (a few
// hundred microseconds on one core) run on the calling thread: each parallel
// region is a barrier, and on a loaded machine a barrier waits for a descheduled
// thread (milliseconds), which made small models decode at a few tokens/s.
int64_t kParallelMacs = int64_t(1) << 20;

}  // namespace


namespace {

void matvec(float* y, const float* W, const float* x, int64_t rows, int64_t cols,
            bool accumulate) {
#pragma omp parallel for schedule(static) if (rows * cols >= kParallelMacs)
  for (int64_t r = 0; r < rows; ++r) {
    const float* w = W + r * cols;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < cols; ++c) sum += w[c] * x[c];
    y[r] = accumulate ? y[r] + sum : sum;
  }
}

// out[C] (=) x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps).
void rmsnorm(float* out, const float* x, const float* weight, int C, double eps) {
  float sum_sq = 0.0f;
#pragma omp simd reduction(+ : sum_sq)
  for (int c = 0; c < C; ++c) sum_sq += x[c] * x[c];
  const float rstd = float(1.0 / std::sqrt(double(sum_sq) / C + eps));
  for (int c = 0; c < C; ++c) out[c] = x[c] * rstd * weight[c];
}

}  // namespace

RefGenerator::RefGenerator(const ModelConfig& config, const float* params, int max_len)
    : config_(config), layout_(config), params_(params), max_len_(max_len) {
  config_.validate("generator config");
  if (config_.qkv_bias || config_.qk_norm || config_.has_rope_scaling())
    fail_input(config_.name,
               "the decoding oracle implements plain Llama models only",
               "a plain llama model", "model_type " + config_.model_type);
  if (params == nullptr) fail_input("generator", "no parameters given");
  if (max_len < 1 || max_len > config_.max_seq_len)
    fail_input("generator", "max_len must be in [1, max_seq_len]; raise max_seq_len or shorten the run",
               "1.." + std::to_string(config_.max_seq_len), std::to_string(max_len));

  const int L = config_.n_layers, C = config_.dim, D = config_.head_dim;
  const int Hkv = config_.n_kv_heads, half = D / 2;
  // RoPE table, angle = pos * theta^(-2i/D) in double (as the oracle), stored fp32.
  rope_cos_.resize(size_t(max_len) * half);
  rope_sin_.resize(size_t(max_len) * half);
  for (int pos = 0; pos < max_len; ++pos)
    for (int i = 0; i < half; ++i) {
      const double angle = pos * std::pow(config_.rope_theta, -2.0 * i / D);
      rope_cos_[size_t(pos) * half + i] = float(std::cos(angle));
      rope_sin_[size_t(pos) * half + i] = float(std::sin(angle));
    }
  const size_t cache = size_t(L) * max_len * Hkv * D;
  key_cache_.assign(cache, 0.0f);
  value_cache_.assign(cache, 0.0f);
  x_.resize(C);
  xn_.resize(C);
  qkv_.resize(config_.qkv_dim());
  att_.resize(config_.q_dim());
  scores_.resize(size_t(config_.n_heads) * max_len);
  h13_.resize(size_t(2) * config_.hidden_dim);
  gated_.resize(config_.hidden_dim);
  logits_.resize(config_.vocab_size);
}

const float* RefGenerator::forward(int token, int pos) {
  if (token < 0 || token >= config_.vocab_size)
    fail_input("generator", "token id out of range",
               "0.." + std::to_string(config_.vocab_size - 1), std::to_string(token));
  if (pos < 0 || pos >= max_len_)
    fail_input("generator", "position out of range (the sequence is limited to max_len)",
               "0.." + std::to_string(max_len_ - 1), std::to_string(pos));
  if (pos > filled_)
    fail_input("generator", "position skips positions never fed since the last reset",
               "<= " + std::to_string(filled_), std::to_string(pos));

  const ModelConfig& c = config_;
  const int C = c.dim, H = c.n_heads, Hkv = c.n_kv_heads, D = c.head_dim, F = c.hidden_dim;
  const int half = D / 2;
  const float* P = params_;

  std::memcpy(x_.data(), P + layout_.embedding() + int64_t(token) * C, sizeof(float) * C);
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerOffsets& o = layout_.layer(l);
    // qkv = Wqkv rmsnorm(x)
    rmsnorm(xn_.data(), x_.data(), P + o.attn_norm, C, c.norm_eps);
    matvec(qkv_.data(), P + o.wqkv, xn_.data(), c.qkv_dim(), C, false);
    // RoPE on the H query heads and the Hkv key heads, which are adjacent in qkv.
    const float* cos_row = rope_cos_.data() + size_t(pos) * half;
    const float* sin_row = rope_sin_.data() + size_t(pos) * half;
    for (int head = 0; head < H + Hkv; ++head) {
      float* v = qkv_.data() + size_t(head) * D;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cos_row[i] - b * sin_row[i];
        v[i + half] = b * cos_row[i] + a * sin_row[i];
      }
    }
    // Cache this position's k and v: [L, max_len, Hkv, D].
    const size_t slot = (size_t(l) * max_len_ + pos) * Hkv * D;
    std::memcpy(key_cache_.data() + slot, qkv_.data() + size_t(H) * D, sizeof(float) * Hkv * D);
    std::memcpy(value_cache_.data() + slot, qkv_.data() + size_t(H + Hkv) * D,
                sizeof(float) * Hkv * D);
    attention(l, pos);
    // x += Wo att
    matvec(x_.data(), P + o.wo, att_.data(), C, c.q_dim(), true);
    // x += W2 (silu(W1 xn) * (W3 xn)), xn = rmsnorm(x) * ffn_norm
    rmsnorm(xn_.data(), x_.data(), P + o.ffn_norm, C, c.norm_eps);
    matvec(h13_.data(), P + o.w13, xn_.data(), int64_t(2) * F, C, false);
    for (int i = 0; i < F; ++i) {
      const float h1 = h13_[i], h3 = h13_[F + i];
      gated_[i] = h1 / (1.0f + std::exp(-h1)) * h3;
    }
    matvec(x_.data(), P + o.w2, gated_.data(), C, F, true);
  }
  rmsnorm(xn_.data(), x_.data(), P + layout_.final_norm(), C, c.norm_eps);
  matvec(logits_.data(), P + layout_.classifier(), xn_.data(), c.vocab_size, C, false);
  filled_ = pos + 1;
  return logits_.data();
}

// att_[H*D] (=) per query head h: softmax_{t <= pos}(q_h . k_t / sqrt(D)) v_t, with
// k_t, v_t of kv head h / (H / Hkv) read from the cache of `layer`.
void RefGenerator::attention(int layer, int pos) {
  const int H = config_.n_heads, Hkv = config_.n_kv_heads, D = config_.head_dim;
  const int group = H / Hkv;
  const float scale = float(1.0 / std::sqrt(double(D)));
  const size_t stride = size_t(Hkv) * D;  // from one position to the next in the cache
  const float* keys = key_cache_.data() + size_t(layer) * max_len_ * stride;
  const float* values = value_cache_.data() + size_t(layer) * max_len_ * stride;
#pragma omp parallel for schedule(static) if (int64_t(H) * (pos + 1) * D >= kParallelMacs / 2)
  for (int h = 0; h < H; ++h) {
    const float* q = qkv_.data() + size_t(h) * D;
    const size_t kv_offset = size_t(h / group) * D;
    float* scores = scores_.data() + size_t(h) * max_len_;  // [pos + 1]
    float max_score = -INFINITY;
    for (int t = 0; t <= pos; ++t) {
      const float* k = keys + t * stride + kv_offset;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int d = 0; d < D; ++d) dot += q[d] * k[d];
      scores[t] = dot * scale;
      max_score = std::max(max_score, scores[t]);
    }
    float sum = 0.0f;
    for (int t = 0; t <= pos; ++t) {
      scores[t] = std::exp(scores[t] - max_score);
      sum += scores[t];
    }
    float* out = att_.data() + size_t(h) * D;
    std::fill(out, out + D, 0.0f);
    for (int t = 0; t <= pos; ++t) {
      const float* v = values + t * stride + kv_offset;
      const float p = scores[t];
#pragma omp simd
      for (int d = 0; d < D; ++d) out[d] += p * v[d];
    }
    const float inv_sum = 1.0f / sum;
    for (int d = 0; d < D; ++d) out[d] *= inv_sum;
  }
}

const float* RefGenerator::prefill(const std::vector<int>& tokens, int pos0) {
  if (tokens.empty()) fail_input("generator", "prefill needs at least one token", ">= 1", "0");
  const float* logits = nullptr;
  for (size_t i = 0; i < tokens.size(); ++i) logits = forward(tokens[i], pos0 + int(i));
  return logits;
}

}  // namespace kiln::ref
