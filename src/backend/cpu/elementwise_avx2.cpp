// The elementwise kernels compiled for AVX2 + FMA (-mavx2 -mfma -mf16c, set by the
// build for *_avx2.cpp). Bodies: elementwise_kernels.inc, reached through elementwise.cpp.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>

#include "backend/cpu/elementwise_kernels.h"

namespace kiln::cpu::avx2 {
namespace {
// x[i] = sqrt(x[i]) (AVX; IEEE correctly rounded, like sqrtf).
void sqrt_in_place(float* x, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_sqrt_ps(_mm256_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = __builtin_sqrtf(x[i]);
}
}  // namespace

#include "backend/cpu/elementwise_kernels.inc"
}  // namespace kiln::cpu::avx2
