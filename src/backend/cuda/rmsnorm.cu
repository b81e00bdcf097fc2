// Fused RMSNorm forward and backward on the GPU.
//
// forward  (=): one warp per row: sum of squares by a warp butterfly, then
//               rstd = 1 / sqrt(mean(x^2) + eps) formed in double (as the CPU does),
//               y = x * rstd * w written in fp32 or bf16.
// backward: with r = rstd, d = w * dout and k = r^3 (1/C) sum_c d_c x_c,
//               dx_c      (+=) r d_c - k x_c
//               dweight_c (+=) sum_i dout_ic x_ic r_i
//           dweight is deterministic without atomics: block b owns the fixed rows
//           [32 b, 32 b + 32) and writes one partial row; a second kernel adds the
//           partial rows per column in double, in a fixed order. The partition depends
//           only on N, never on the GPU, so every run gives the same bits.
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_common.cuh"
#include "backend/cuda/rmsnorm_kernels.cuh"
#include "core/error.h"

namespace kiln {
namespace {

using namespace kiln::cuda;
using namespace kiln::rmsnorm_kernels;

}  // namespace

void CudaBackend::rmsnorm_forward(void* out, DType out_dtype, float* rstd, const float* x,
                                  const float* weight, int64_t N, int C, float eps) {
  if (N <= 0) return;
  if (C <= 0) fail_input("rmsnorm_forward", "C must be positive", "> 0", std::to_string(C));
  const int64_t rows_per_block = kForwardThreads / kWarp;
  rmsnorm_forward_kernel<<<grid_for(N, int(rows_per_block)), kForwardThreads, 0, stream_>>>(
      out, out_dtype == DType::bf16, rstd, x, weight, N, C, eps);
  check_launch("rmsnorm_forward");
}

void CudaBackend::rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                                   const float* weight, const float* rstd, int64_t N, int C) {
  if (N <= 0) return;
  if (C <= 0) fail_input("rmsnorm_backward", "C must be positive", "> 0", std::to_string(C));
  const int64_t n_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
  float* partials =
      static_cast<float*>(scratch(kScratchRmsPartials, size_t(n_blocks) * C * sizeof(float)));
  rmsnorm_backward_kernel<<<grid_for(n_blocks, 1), kBackwardThreads, 0, stream_>>>(
      dx, partials, dout, x, weight, rstd, N, C, n_blocks);
  check_launch("rmsnorm_backward");
  const unsigned col_blocks = unsigned((C + kWarp - 1) / kWarp);
  rmsnorm_dweight_kernel<<<col_blocks, dim3(kWarp, kSumGroups), 0, stream_>>>(dweight, partials,
                                                                              n_blocks, C);
  check_launch("rmsnorm_backward (dweight)");
}

}  // namespace kiln
