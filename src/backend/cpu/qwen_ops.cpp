// CpuBackend's ops for the Qwen attention extras: the q/k/v projection bias (Qwen2)
// and the per-head RMSNorm of q and k (Qwen3). Plain loops (the compiler
// vectorises the inner ones), OpenMP over rows or columns; each output element is
// owned by one thread and summed in a fixed order, so results do not depend on
// the thread count.
#include <cmath>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

void check_heads(const char* op, int64_t N, int H, int Hkv, int D) {
  if (N < 0) fail_input(op, "negative row count", ">= 0", std::to_string(N));
  if (H <= 0 || Hkv <= 0 || D <= 0)
    fail_input(op, "heads and head_dim must be positive", "> 0",
               std::to_string(H) + ", " + std::to_string(Hkv) + ", " + std::to_string(D));
}

constexpr int64_t kParallelWork = 1 << 14;  // elements below which threads cost more than they save

}  // namespace

// y[n, c] += b[c]
void CpuBackend::bias_forward(float* y, const float* bias, int64_t N, int C) {
#pragma omp parallel for schedule(static) if (N * C > kParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    float* row = y + n * C;
    for (int c = 0; c < C; ++c) row[c] += bias[c];
  }
}

// dbias[c] += sum_n dy[n, c], rows summed in order per column.
void CpuBackend::bias_backward(float* dbias, const float* dy, int64_t N, int C) {
  constexpr int kCols = 64;  // a block of columns per task: one cache line run per row
  const int blocks = (C + kCols - 1) / kCols;
#pragma omp parallel for schedule(static) if (N * C > kParallelWork)
  for (int blk = 0; blk < blocks; ++blk) {
    const int c0 = blk * kCols, c1 = c0 + kCols < C ? c0 + kCols : C;
    float sum[kCols] = {};
    for (int64_t n = 0; n < N; ++n)
      for (int c = c0; c < c1; ++c) sum[c - c0] += dy[n * C + c];
    for (int c = c0; c < c1; ++c) dbias[c] += sum[c - c0];
  }
}

// Per row: heads 0..H-1 (q) and H..H+Hkv-1 (k) normed over D values, v copied.
void CpuBackend::head_rmsnorm_forward(float* out, float* rstd, const float* qkv,
                                      const float* q_weight, const float* k_weight, int64_t N,
                                      int H, int Hkv, int D, float eps) {
  check_heads("head_rmsnorm_forward", N, H, Hkv, D);
  const int normed = H + Hkv;
  const int64_t stride = int64_t(H + 2 * Hkv) * D;
#pragma omp parallel for schedule(static) if (N * stride > kParallelWork)
  for (int64_t n = 0; n < N; ++n) {
    for (int h = 0; h < normed; ++h) {
      const float* x = qkv + n * stride + int64_t(h) * D;
      float* y = out + n * stride + int64_t(h) * D;
      const float* w = h < H ? q_weight : k_weight;
      float sum_sq = 0.0f;
      for (int i = 0; i < D; ++i) sum_sq += x[i] * x[i];
      const float r = float(1.0 / std::sqrt(double(sum_sq) / D + double(eps)));
      rstd[n * normed + h] = r;
      for (int i = 0; i < D; ++i) y[i] = x[i] * r * w[i];  // y = x r w
    }
    const int64_t v0 = int64_t(normed) * D;
    for (int64_t i = v0; i < stride; ++i) out[n * stride + i] = qkv[n * stride + i];
  }
}

// y_i = x_i r w_i, r = (sum_j x_j^2 / D + eps)^(-1/2), per head:
//   dx_i = r w_i dy_i - x_i r^3 / D * sum_j dy_j w_j x_j   (=, over dy in place)
//   dw_i += sum over rows and heads of dy_i x_i r          (before dy is overwritten)
void CpuBackend::head_rmsnorm_backward(float* dqkv, float* dq_weight, float* dk_weight,
                                       const float* qkv, const float* q_weight,
                                       const float* k_weight, const float* rstd, int64_t N, int H,
                                       int Hkv, int D) {
  check_heads("head_rmsnorm_backward", N, H, Hkv, D);
  const int normed = H + Hkv;
  const int64_t stride = int64_t(H + 2 * Hkv) * D;
  // dweight: one thread per (q or k, i), heads and rows in order.
#pragma omp parallel for schedule(static) if (N * stride > kParallelWork)
  for (int task = 0; task < 2 * D; ++task) {
    const bool is_q = task < D;
    const int i = is_q ? task : task - D;
    const int h0 = is_q ? 0 : H, h1 = is_q ? H : normed;
    float sum = 0.0f;
    for (int64_t n = 0; n < N; ++n)
      for (int h = h0; h < h1; ++h) {
        const int64_t at = n * stride + int64_t(h) * D + i;
        sum += dqkv[at] * qkv[at] * rstd[n * normed + h];
      }
    (is_q ? dq_weight : dk_weight)[i] += sum;
  }
#pragma omp parallel for schedule(static) if (N * stride > kParallelWork)
  for (int64_t n = 0; n < N; ++n)
    for (int h = 0; h < normed; ++h) {
      float* g = dqkv + n * stride + int64_t(h) * D;
      const float* x = qkv + n * stride + int64_t(h) * D;
      const float* w = h < H ? q_weight : k_weight;
      const float r = rstd[n * normed + h];
      float dot = 0.0f;  // sum_j dy_j w_j x_j
      for (int i = 0; i < D; ++i) dot += g[i] * w[i] * x[i];
      const float k = r * r * r * dot / float(D);
      for (int i = 0; i < D; ++i) g[i] = r * w[i] * g[i] - x[i] * k;
    }
}

}  // namespace kiln
