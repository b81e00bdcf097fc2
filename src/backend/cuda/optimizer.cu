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
#include "backend/cuda/optimizer_kernels.cuh"
#include "core/error.h"

namespace kiln {
namespace {

using namespace kiln::cuda;
using namespace kiln::optimizer_kernels;

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
