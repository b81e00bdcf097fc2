#include "backend/cpu/gemv.h"

#include <omp.h>

#include "core/cpu_features.h"

namespace kiln::cpu {
namespace {

// Multiply-adds below which the product runs on one thread.
constexpr int64_t kParallelMacs = int64_t(1) << 18;

inline float widen(uint16_t bits) { return bf16_to_float(bf16{bits}); }

// The portable bodies (below AVX-512): each weight row is read from memory once
// and reused from L1 for every row of x.
template <typename T>
void gemv_portable(float* y, const T* x, const T* W, int64_t M, int64_t N, int64_t K,
                   bool accumulate) {
#pragma omp parallel for schedule(static) if (M * N * K >= kParallelMacs)
  for (int64_t n = 0; n < N; ++n) {
    const T* w = W + n * K;
    for (int64_t m = 0; m < M; ++m) {
      const T* xm = x + m * K;
      float s = 0.0f;
      if constexpr (sizeof(T) == 2) {
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += widen(xm[k]) * widen(w[k]);
      } else {
#pragma omp simd reduction(+ : s)
        for (int64_t k = 0; k < K; ++k) s += xm[k] * w[k];
      }
      float& out = y[m * N + n];
      out = accumulate ? out + s : s;
    }
  }
}

}  // namespace

bool gemv_linear(float* y, const void* x, const void* W, DType dtype, int64_t M, int64_t N,
                 int64_t K, bool accumulate) {
  if (M < 1 || M > kGemvMaxRows) return false;
  const bool avx512 = active_isa() == Isa::avx512;
  if (dtype == DType::f32) {
    const float* xf = static_cast<const float*>(x);
    const float* wf = static_cast<const float*>(W);
    if (avx512)
      gemv_f32_avx512(y, xf, wf, M, N, K, accumulate);
    else
      gemv_portable(y, xf, wf, M, N, K, accumulate);
    return true;
  }
  if (dtype == DType::bf16) {
    const uint16_t* xb = static_cast<const uint16_t*>(x);
    const uint16_t* wb = static_cast<const uint16_t*>(W);
    if (avx512)
      gemv_bf16_avx512(y, xb, wb, M, N, K, accumulate, cpu_features().avx512_bf16);
    else
      gemv_portable(y, xb, wb, M, N, K, accumulate);
    return true;
  }
  return false;
}

}  // namespace kiln::cpu
