// Attention over a KV cache on the CPU (semantics in backend.h, attention_decode):
// the decode step (T = 1 per sequence) and prefill chunks (T > 1) of sampling.
//
// First the T new keys and values of every sequence are written to its cache slot;
// then one task per (sequence b, query head h, token t) computes the scores of its
// query against cache positions 0..p (p = pos[b] + t) into the thread's scratch,
// softmaxes them (max subtracted, sum in fp32) and accumulates the values in that
// order. Each output row is written by one task in a fixed order, so the result
// does not depend on the thread count. Small problems stay on the calling thread:
// a parallel region is a barrier, and decoding a small model is a chain of them.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

// Multiply-adds below which a call runs on one thread.
constexpr int64_t kParallelMacs = int64_t(1) << 16;

void check_positive(const char* what, int64_t value) {
  if (value <= 0)
    fail_input("attention_decode", std::string(what) + " must be positive", "> 0",
               std::to_string(value));
}

}  // namespace

void CpuBackend::attention_decode(float* out, float* k_cache, float* v_cache, const float* qkv,
                                  int B, int T, int H, int Hkv, int D, const int32_t* pos,
                                  int max_len) {
  check_positive("B", B);
  check_positive("T", T);
  check_positive("n_heads", H);
  check_positive("n_kv_heads", Hkv);
  check_positive("head_dim", D);
  check_positive("max_len", max_len);
  if (H % Hkv != 0)
    fail_input("attention_decode", "n_kv_heads must divide n_heads",
               "a divisor of " + std::to_string(H), std::to_string(Hkv));
  int64_t macs = 0;
  for (int b = 0; b < B; ++b) {
    if (pos[b] < 0 || int64_t(pos[b]) + T > max_len)
      fail_input("attention_decode", "position of sequence " + std::to_string(b) + " out of range",
                 "0.." + std::to_string(max_len - T), std::to_string(pos[b]));
    macs += int64_t(T) * (pos[b] + T) * H * D * 2;
  }
  const int64_t row = int64_t(H + 2 * Hkv) * D;  // qkv row
  const int64_t kv = int64_t(Hkv) * D;            // cache row
  const int64_t slot = int64_t(max_len) * kv;     // one sequence's cache
  const int group = H / Hkv;
  const float scale = float(1.0 / std::sqrt(double(D)));
  const bool parallel = macs >= kParallelMacs;

  // Append the new keys and values.
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const float* src = qkv + (int64_t(b) * T + t) * row;
      const int64_t at = b * slot + int64_t(pos[b] + t) * kv;
      std::memcpy(k_cache + at, src + int64_t(H) * D, sizeof(float) * kv);
      std::memcpy(v_cache + at, src + int64_t(H + Hkv) * D, sizeof(float) * kv);
    }

  const int64_t tasks = int64_t(B) * H * T;
#pragma omp parallel if (parallel)
  {
    thread_local std::vector<float> scores;  // grow-only: [max_len]
    if (int64_t(scores.size()) < max_len) scores.resize(size_t(max_len));
    float* s = scores.data();
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int b = int(task / (int64_t(H) * T));
      const int h = int(task / T % H);
      const int t = int(task % T);
      const int p = pos[b] + t;
      const float* q = qkv + (int64_t(b) * T + t) * row + int64_t(h) * D;
      const float* keys = k_cache + b * slot + int64_t(h / group) * D;
      const float* values = v_cache + b * slot + int64_t(h / group) * D;
      float max_score = -INFINITY;
      for (int j = 0; j <= p; ++j) {
        const float* k = keys + int64_t(j) * kv;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < D; ++d) dot += q[d] * k[d];
        s[j] = dot * scale;
        max_score = std::max(max_score, s[j]);
      }
      float sum = 0.0f;
      for (int j = 0; j <= p; ++j) {
        s[j] = std::exp(s[j] - max_score);
        sum += s[j];
      }
      float* o = out + (int64_t(b) * T + t) * int64_t(H) * D + int64_t(h) * D;
      std::fill(o, o + D, 0.0f);
      for (int j = 0; j <= p; ++j) {
        const float* v = values + int64_t(j) * kv;
        const float w = s[j];
#pragma omp simd
        for (int d = 0; d < D; ++d) o[d] += w * v[d];
      }
      const float inv = 1.0f / sum;
      for (int d = 0; d < D; ++d) o[d] *= inv;
    }
  }
}

}  // namespace kiln
