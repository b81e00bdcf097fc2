// The elementwise kernels compiled for AVX-512 F/BW/DQ/VL (flags set by the build for
// *_avx512.cpp). Bodies: elementwise_kernels.inc, reached through elementwise.cpp.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>

#include "backend/cpu/elementwise_kernels.h"

namespace kiln::cpu::avx512 {
namespace {
// x[i] = sqrt(x[i]) (AVX-512F; IEEE correctly rounded, like sqrtf).
void sqrt_in_place(float* x, int n) {
  int i = 0;
  // The all-ones masked form: _mm512_sqrt_ps's undefined pass-through value trips
  // GCC 12's -Wmaybe-uninitialized inside its own header.
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    _mm512_storeu_ps(x + i, _mm512_mask_sqrt_ps(v, __mmask16(0xffff), v));
  }
  for (; i < n; ++i) x[i] = __builtin_sqrtf(x[i]);
}
}  // namespace

#include "backend/cpu/elementwise_kernels.inc"
}  // namespace kiln::cpu::avx512
