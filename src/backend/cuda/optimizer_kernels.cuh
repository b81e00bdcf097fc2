// Kernels of the grad norm and the fused AdamW (launched by optimizer.cu; also compiled
// for the CPU by tests/test_cuda_kernels_emulated.cpp). See optimizer.cu for the math.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::optimizer_kernels {
namespace {

using namespace kiln::cuda;

constexpr int64_t kNormChunk = int64_t(1) << 16;
constexpr int kNormThreads = 256;
constexpr int kAdamThreads = 256;

__global__ void sum_squares_chunks_kernel(double* partials, const float* g, int64_t n,
                                          int64_t n_chunks) {
  __shared__ double shared[kWarp];
  for (int64_t chunk = blockIdx.x; chunk < n_chunks; chunk += gridDim.x) {
    const int64_t begin = chunk * kNormChunk;
    const int64_t end = begin + kNormChunk < n ? begin + kNormChunk : n;
    double sum = 0.0;
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
      sum += double(g[i]) * double(g[i]);
    sum = block_sum(sum, shared);
    if (threadIdx.x == 0) partials[chunk] = sum;
  }
}

__global__ void norm_finish_kernel(float* out, const double* partials, int64_t n_chunks) {
  __shared__ double shared[kWarp];
  double sum = 0.0;
  for (int64_t i = threadIdx.x; i < n_chunks; i += blockDim.x) sum += partials[i];
  sum = block_sum(sum, shared);
  if (threadIdx.x == 0) out[0] = float(sqrt(sum));
}

// The scalars of one AdamW step (as cpu::AdamWScalars), except the clip scale.
struct AdamWArgs {
  float beta1, beta2, eps, weight_decay, max_norm;
  // Step-dependent, used when `dynamic` is null:
  float decay_factor;           // 1 - lr * weight_decay
  float step_size;              // lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
};

struct DynamicStep {  // layout of CudaBackend::OptimizerStep
  double lr;
  int64_t step;
};

enum class Copy { none, f32, bf16 };

template <Copy kCopy>
__global__ void adamw_kernel(float* params, void* compute_out, const float* grads, float* m,
                             float* v, int64_t n, AdamWArgs a, const float* grad_norm,
                             const DynamicStep* dynamic) {
  // clip_grad_norm_: coef = max_norm / (norm + 1e-6) in fp32, only when norm > max_norm.
  float scale = 1.0f;
  if (a.max_norm > 0.0f) {
    const float norm = grad_norm[0];
    if (norm > a.max_norm) scale = a.max_norm / (norm + 1e-6f);
  }
  float decay = a.decay_factor, step_size = a.step_size, bc2_sqrt = a.bias_correction2_sqrt;
  if (dynamic) {  // the same double-precision formulas the host uses
    const double lr = dynamic->lr, step = double(dynamic->step);
    decay = float(1.0 - lr * double(a.weight_decay));
    step_size = float(lr / (1.0 - pow(double(a.beta1), step)));
    bc2_sqrt = float(sqrt(1.0 - pow(double(a.beta2), step)));
  }
  const float w = float(1.0 - double(a.beta1));  // lerp weight 1 - beta1
  const bool lerp_low = w < 0.5f;
  const float lerp_w = lerp_low ? w : 1.0f - w;
  const float one_minus_beta2 = float(1.0 - double(a.beta2));
  for (int64_t i = grid_first(); i < n; i += grid_stride()) {
    const float g = grads[i] * scale;
    const float mi = m[i];
    // torch's lerp: weight < 0.5 ? m + w (g - m) : g - (g - m)(1 - w)
    const float mn = lerp_low ? mi + lerp_w * (g - mi) : g - (g - mi) * lerp_w;
    const float vn = v[i] * a.beta2 + one_minus_beta2 * (g * g);
    m[i] = mn;
    v[i] = vn;
    const float pn = params[i] * decay + (-step_size) * (mn / (sqrtf(vn) / bc2_sqrt + a.eps));
    params[i] = pn;
    if constexpr (kCopy == Copy::f32) static_cast<float*>(compute_out)[i] = pn;
    if constexpr (kCopy == Copy::bf16) static_cast<uint16_t*>(compute_out)[i] = to_bf16_bits(pn);
  }
}

}  // namespace
}  // namespace kiln::optimizer_kernels
