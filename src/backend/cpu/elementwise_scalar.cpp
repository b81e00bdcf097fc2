// The elementwise kernels compiled for the x86-64 baseline (SSE2), the fallback every
// x86-64 CPU runs. Bodies: elementwise_kernels.inc, reached through elementwise.cpp.
#include <omp.h>
#include <xmmintrin.h>

#include <cstdint>

#include "backend/cpu/elementwise_kernels.h"

namespace kiln::cpu::scalar {
namespace {
// x[i] = sqrt(x[i]) (SSE, part of the baseline; IEEE correctly rounded, like sqrtf).
void sqrt_in_place(float* x, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) _mm_storeu_ps(x + i, _mm_sqrt_ps(_mm_loadu_ps(x + i)));
  for (; i < n; ++i) x[i] = __builtin_sqrtf(x[i]);
}
}  // namespace

#include "backend/cpu/elementwise_kernels.inc"
}  // namespace kiln::cpu::scalar
