// Kernels of CudaBackend's Qwen attention extras (launched by qwen_ops.cu; also
// compiled for the CPU by tests/test_cuda_kernels_emulated.cpp): the q/k/v
// projection bias (Qwen2) and the per-head RMSNorm of q and k (Qwen3). Simple
// grid-stride loops, one thread per output element, column or head; every sum runs
// in a fixed order, so the results do not depend on the launch shape. The math is
// that of the CPU ops (src/backend/cpu/qwen_ops.cpp).
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::qwen_kernels {
namespace {

using namespace kiln::cuda;

// y[n, c] (+=) bias[c]
__global__ void bias_forward_kernel(float* y, const float* bias, int64_t N, int C) {
  const int64_t total = N * C;
  for (int64_t i = grid_first(); i < total; i += grid_stride()) y[i] += bias[i % C];
}

// dbias[c] (+=) sum_n dy[n, c]: one thread per column (coalesced over c), rows in order.
__global__ void bias_backward_kernel(float* dbias, const float* dy, int64_t N, int C) {
  for (int64_t c = grid_first(); c < C; c += grid_stride()) {
    float sum = 0.0f;
    for (int64_t n = 0; n < N; ++n) sum += dy[n * C + c];
    dbias[c] += sum;
  }
}

// One thread per (row, head) over the H + Hkv normed heads: y = x r w with
// r = 1 / sqrt(mean(x^2) + eps) (formed in double as the CPU does); then the value
// heads are copied.
__global__ void head_rmsnorm_forward_kernel(float* out, float* rstd, const float* qkv,
                                            const float* q_weight, const float* k_weight, int64_t N,
                                            int H, int Hkv, int D, float eps) {
  const int normed = H + Hkv;
  const int64_t stride = int64_t(H + 2 * Hkv) * D;
  for (int64_t t = grid_first(); t < N * normed; t += grid_stride()) {
    const int64_t n = t / normed;
    const int h = int(t - n * normed);
    const float* x = qkv + n * stride + int64_t(h) * D;
    float* y = out + n * stride + int64_t(h) * D;
    const float* w = h < H ? q_weight : k_weight;
    float sum_sq = 0.0f;
    for (int i = 0; i < D; ++i) sum_sq += x[i] * x[i];
    const float r = float(1.0 / sqrt(double(sum_sq) / D + double(eps)));
    rstd[t] = r;
    for (int i = 0; i < D; ++i) y[i] = x[i] * r * w[i];
  }
  const int64_t v_width = int64_t(Hkv) * D, v0 = int64_t(normed) * D;
  for (int64_t t = grid_first(); t < N * v_width; t += grid_stride()) {
    const int64_t n = t / v_width, i = t - n * v_width;
    out[n * stride + v0 + i] = qkv[n * stride + v0 + i];
  }
}

// dweight: one thread per (q or k, i) in [0, 2D): dw_i (+=) sum over rows and heads
// of dy_i x_i r. Runs before head_rmsnorm_dx_kernel overwrites dy.
__global__ void head_rmsnorm_dweight_kernel(float* dq_weight, float* dk_weight, const float* dqkv,
                                            const float* qkv, const float* rstd, int64_t N, int H,
                                            int Hkv, int D) {
  const int normed = H + Hkv;
  const int64_t stride = int64_t(H + 2 * Hkv) * D;
  for (int64_t task = grid_first(); task < 2 * D; task += grid_stride()) {
    const bool is_q = task < D;
    const int i = int(is_q ? task : task - D);
    const int h0 = is_q ? 0 : H, h1 = is_q ? H : normed;
    float sum = 0.0f;
    for (int64_t n = 0; n < N; ++n)
      for (int h = h0; h < h1; ++h) {
        const int64_t at = n * stride + int64_t(h) * D + i;
        sum += dqkv[at] * qkv[at] * rstd[n * normed + h];
      }
    (is_q ? dq_weight : dk_weight)[i] += sum;
  }
}

// One thread per (row, head), in place: dx_i (=) r w_i dy_i - x_i r^3 / D sum_j dy_j w_j x_j.
__global__ void head_rmsnorm_dx_kernel(float* dqkv, const float* qkv, const float* q_weight,
                                       const float* k_weight, const float* rstd, int64_t N, int H,
                                       int Hkv, int D) {
  const int normed = H + Hkv;
  const int64_t stride = int64_t(H + 2 * Hkv) * D;
  for (int64_t t = grid_first(); t < N * normed; t += grid_stride()) {
    const int64_t n = t / normed;
    const int h = int(t - n * normed);
    float* g = dqkv + n * stride + int64_t(h) * D;
    const float* x = qkv + n * stride + int64_t(h) * D;
    const float* w = h < H ? q_weight : k_weight;
    const float r = rstd[t];
    float dot = 0.0f;
    for (int i = 0; i < D; ++i) dot += g[i] * w[i] * x[i];
    const float k = r * r * r * dot / float(D);
    for (int i = 0; i < D; ++i) g[i] = r * w[i] * g[i] - x[i] * k;
  }
}

}  // namespace
}  // namespace kiln::qwen_kernels
