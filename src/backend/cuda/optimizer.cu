// The optimizer's device ops: the global grad norm and the fused AdamW pass.
//
// global_norm (=): two passes, deterministic. Pass 1: block k sums the squares of the
//   fixed chunk [k * 2^16, (k + 1) * 2^16) in double (strided per thread, then a fixed
//   butterfly) into partials[k]. Pass 2: one block adds the partials in a fixed order
//   and writes sqrt to out[0]. Nothing leaves the device.
// adamw: torch.optim.AdamW with clip_grad_norm_ folded in, per element exactly the
//   CPU kernel's fp32 arithmetic (elementwise_kernels.inc). The clip scale is formed
//   on the device from the norm in device memory; the step-dependent scalars come by
//   value, or (inside a CUDA graph capture) from device memory so a replayed graph
//   picks up each step's learning rate (see cuda_graph.cpp).
#include <cmath>
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_common.cuh"
#include "core/error.h"

namespace kiln {
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

void CudaBackend::global_norm(float* out, const float* g, int64_t n) {
  if (n < 0) fail_input("global_norm", "negative element count", ">= 0", std::to_string(n));
  const int64_t n_chunks = (n + kNormChunk - 1) / kNormChunk;
  double* partials = static_cast<double*>(
      scratch(kScratchNormPartials, size_t(n_chunks > 0 ? n_chunks : 1) * sizeof(double)));
  if (n_chunks > 0) {
    sum_squares_chunks_kernel<<<grid_for(n_chunks, 1), kNormThreads, 0, stream_>>>(partials, g, n,
                                                                                   n_chunks);
    check_launch("global_norm");
  }
  norm_finish_kernel<<<1, 1024, 0, stream_>>>(out, partials, n_chunks);  // n = 0 writes 0
  check_launch("global_norm");
}

void CudaBackend::adamw(float* params, void* params_compute, DType compute_dtype,
                        const float* grads, float* m, float* v, int64_t n, const AdamWHyper& hyper,
                        const float* grad_norm) {
  if (n <= 0) return;
  if (hyper.step < 1)
    fail_input("adamw", "step must be 1-based", ">= 1", std::to_string(hyper.step));
  if (hyper.max_norm > 0 && !grad_norm)
    fail_runtime("adamw", "clipping needs the grad norm buffer");
  // The scalars torch forms in Python (double), rounded to fp32 for the kernel.
  const double lr = hyper.lr, beta1 = hyper.beta1, beta2 = hyper.beta2, step = double(hyper.step);
  AdamWArgs a;
  a.beta1 = hyper.beta1;
  a.beta2 = hyper.beta2;
  a.eps = hyper.eps;
  a.weight_decay = hyper.weight_decay;
  a.max_norm = hyper.max_norm;
  a.decay_factor = float(1.0 - lr * double(hyper.weight_decay));
  a.step_size = float(lr / (1.0 - std::pow(beta1, step)));
  a.bias_correction2_sqrt = float(std::sqrt(1.0 - std::pow(beta2, step)));
  const DynamicStep* dynamic = nullptr;
  if (capturing_) {
    // Recorded kernels read (lr, step) from device memory, refreshed per replay.
    if (capture_used_adamw_ && (step_pinned_->lr != lr || step_pinned_->step != hyper.step))
      fail_runtime("adamw", "the adamw calls of one graph capture must share lr and step");
    capture_used_adamw_ = true;
    step_pinned_->lr = lr;
    step_pinned_->step = hyper.step;
    dynamic = reinterpret_cast<const DynamicStep*>(step_device_);
  }
  const unsigned blocks = grid_for(n, kAdamThreads);
  if (!params_compute)
    adamw_kernel<Copy::none><<<blocks, kAdamThreads, 0, stream_>>>(params, nullptr, grads, m, v, n,
                                                                   a, grad_norm, dynamic);
  else if (compute_dtype == DType::bf16)
    adamw_kernel<Copy::bf16><<<blocks, kAdamThreads, 0, stream_>>>(params, params_compute, grads, m,
                                                                   v, n, a, grad_norm, dynamic);
  else
    adamw_kernel<Copy::f32><<<blocks, kAdamThreads, 0, stream_>>>(params, params_compute, grads, m,
                                                                  v, n, a, grad_norm, dynamic);
  check_launch("adamw");
}

}  // namespace kiln
