// AVX-512 fp32 -> bf16, 16 values per step. Compiled with -mavx512* (see CMakeLists.txt);
// reached only through f32_to_bf16() after the cpuid check.
// GCC 12's AVX-512 headers warn about their own _mm512_undefined_*() placeholders
// once inlined (GCC bug 105593); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backend/cpu/bf16_convert.h"

namespace kiln {
namespace {

// float_to_bf16 on 16 lanes with integer ops (AVX-512F/BW):
//   bits = (u + 0x7fff + ((u >> 16) & 1)) >> 16, and (u >> 16) | 0x40 for NaN.
inline __m256i rne_integer(__m512i u) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
  const __m512i rounded =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

// VCVTNEPS2BF16 rounds to nearest even and quiets NaNs exactly as float_to_bf16,
// but treats subnormal inputs as zero; lanes with a zero exponent and a non-zero
// mantissa are redone with the integer path (rare in practice, so a branch).
inline __m256i rne_hardware(__m512i u) {
  const __m256i hw = (__m256i)_mm512_cvtneps_pbh(_mm512_castsi512_ps(u));
  const __m512i exponent = _mm512_and_si512(u, _mm512_set1_epi32(0x7f800000));
  const __m512i mantissa = _mm512_and_si512(u, _mm512_set1_epi32(0x007fffff));
  const __mmask16 subnormal = _mm512_mask_cmpeq_epi32_mask(
      _mm512_test_epi32_mask(mantissa, mantissa), exponent, _mm512_setzero_si512());
  if (subnormal == 0) return hw;
  return _mm256_mask_blend_epi16(subnormal, hw, rne_integer(u));
}

template <bool kHardware>
void convert(uint16_t* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i u = _mm512_loadu_si512(src + i);
    const __m256i r = kHardware ? rne_hardware(u) : rne_integer(u);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), r);
  }
  if (i < n) {
    const __mmask16 tail = __mmask16((1u << (n - i)) - 1);
    const __m512i u = _mm512_maskz_loadu_epi32(tail, src + i);
    const __m256i r = kHardware ? rne_hardware(u) : rne_integer(u);
    _mm256_mask_storeu_epi16(dst + i, tail, r);
  }
}

}  // namespace

void f32_to_bf16_avx512(uint16_t* dst, const float* src, int64_t n, bool hw_bf16) {
  if (hw_bf16)
    convert<true>(dst, src, n);
  else
    convert<false>(dst, src, n);
}

}  // namespace kiln
