// CudaBackend's Qwen attention extras: q/k/v projection bias forward / backward
// (Qwen2) and the per-head RMSNorm of q and k (Qwen3). The kernels and their math
// are in qwen_kernels.cuh.
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_common.cuh"
#include "backend/cuda/qwen_kernels.cuh"
#include "core/error.h"

namespace kiln {
namespace {

using namespace kiln::qwen_kernels;

constexpr int kThreads = 256;

void check_heads(const char* op, int64_t N, int H, int Hkv, int D) {
  if (N < 0) fail_input(op, "negative row count", ">= 0", std::to_string(N));
  if (H <= 0 || Hkv <= 0 || D <= 0)
    fail_input(op, "heads and head_dim must be positive", "> 0",
               std::to_string(H) + ", " + std::to_string(Hkv) + ", " + std::to_string(D));
}

}  // namespace

void CudaBackend::bias_forward(float* y, const float* bias, int64_t N, int C) {
  if (N <= 0 || C <= 0) return;
  bias_forward_kernel<<<grid_for(N * C, kThreads), kThreads, 0, stream_>>>(y, bias, N, C);
  check_launch("bias_forward");
}

void CudaBackend::bias_backward(float* dbias, const float* dy, int64_t N, int C) {
  if (N <= 0 || C <= 0) return;
  bias_backward_kernel<<<grid_for(C, kThreads), kThreads, 0, stream_>>>(dbias, dy, N, C);
  check_launch("bias_backward");
}

void CudaBackend::head_rmsnorm_forward(float* out, float* rstd, const float* qkv,
                                       const float* q_weight, const float* k_weight, int64_t N,
                                       int H, int Hkv, int D, float eps) {
  check_heads("head_rmsnorm_forward", N, H, Hkv, D);
  if (N == 0) return;
  head_rmsnorm_forward_kernel<<<grid_for(N * (H + Hkv), kThreads), kThreads, 0, stream_>>>(
      out, rstd, qkv, q_weight, k_weight, N, H, Hkv, D, eps);
  check_launch("head_rmsnorm_forward");
}

void CudaBackend::head_rmsnorm_backward(float* dqkv, float* dq_weight, float* dk_weight,
                                        const float* qkv, const float* q_weight,
                                        const float* k_weight, const float* rstd, int64_t N, int H,
                                        int Hkv, int D) {
  check_heads("head_rmsnorm_backward", N, H, Hkv, D);
  if (N == 0) return;
  head_rmsnorm_dweight_kernel<<<grid_for(2 * D, kThreads), kThreads, 0, stream_>>>(
      dq_weight, dk_weight, dqkv, qkv, rstd, N, H, Hkv, D);
  check_launch("head_rmsnorm_backward (dweight)");
  head_rmsnorm_dx_kernel<<<grid_for(N * (H + Hkv), kThreads), kThreads, 0, stream_>>>(
      dqkv, qkv, q_weight, k_weight, rstd, N, H, Hkv, D);
  check_launch("head_rmsnorm_backward");
}

}  // namespace kiln
