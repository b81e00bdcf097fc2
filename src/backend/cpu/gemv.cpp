#include "backend/cpu/gemv.h"

#include <omp.h>

namespace kiln::cpu {
namespace {

// Multiply-adds below which the product runs on one thread.
constexpr int64_t kParallelMacs = int64_t(1) << 18;

template <int kRows>
void gemv_f32(float* y, const float* x, const float* W, int64_t N, int64_t K, bool accumulate) {
#pragma omp parallel for schedule(static) if (kRows * N * K >= kParallelMacs)
  for (int64_t n = 0; n < N; ++n) {
    const float* w = W + n * K;
    float sum[kRows] = {};
    for (int m = 0; m < kRows; ++m) {
      const float* xm = x + m * K;
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < K; ++k) s += xm[k] * w[k];
      sum[m] = s;
    }
    for (int m = 0; m < kRows; ++m) {
      float& out = y[m * N + n];
      out = accumulate ? out + sum[m] : sum[m];
    }
  }
}

}  // namespace

bool gemv_linear(float* y, const void* x, const void* W, DType dtype, int64_t M, int64_t N,
                 int64_t K, bool accumulate) {
  if (dtype != DType::f32 || M < 1 || M > kGemvMaxRows) return false;
  const float* xf = static_cast<const float*>(x);
  const float* wf = static_cast<const float*>(W);
  switch (M) {
    case 1: gemv_f32<1>(y, xf, wf, N, K, accumulate); break;
    case 2: gemv_f32<2>(y, xf, wf, N, K, accumulate); break;
    case 3: gemv_f32<3>(y, xf, wf, N, K, accumulate); break;
    default: gemv_f32<4>(y, xf, wf, N, K, accumulate); break;
  }
  return true;
}

}  // namespace kiln::cpu
