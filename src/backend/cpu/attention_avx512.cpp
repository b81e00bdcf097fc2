// AVX-512 build of the flash-attention kernels (attention_flash.inc): 16 floats per
// vector, 6 x 4-vector register tiles (24 of the 32 zmm registers accumulate).
// GCC 12's AVX-512 headers build "undefined" vectors from self-initialised locals
// (`__m512 __Y = __Y;`), which its own -Wuninitialized then reports (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backend/cpu/attention_kernels.h"

namespace kiln::attention_detail::avx512 {
namespace {

struct Simd {
  using V = __m512;
  static constexpr int W = 16;
  static constexpr int MR = 6;
  static constexpr int NV = 4;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static float hmax(V v) { return _mm512_reduce_max_ps(v); }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  // dst[16, 16] (rows at stride ldd) = src[16, 16]^T (rows at stride lds): pairs of
  // rows interleaved by floats, then by float pairs, then 128-bit lanes gathered twice.
  static void transpose_tile(const float* src, int64_t lds, float* dst, int64_t ldd) {
    __m512 r[16], a[16], b[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
    for (int i = 0; i < 8; ++i) {
      a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // b[4i + c], lane L: rows 4i..4i+3 at column 4L + c
    for (int i = 0; i < 4; ++i) {
      const __m512d lo0 = _mm512_castps_pd(a[4 * i]), lo1 = _mm512_castps_pd(a[4 * i + 2]);
      const __m512d hi0 = _mm512_castps_pd(a[4 * i + 1]), hi1 = _mm512_castps_pd(a[4 * i + 3]);
      b[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo0, lo1));
      b[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo0, lo1));
      b[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi0, hi1));
      b[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi0, hi1));
    }
    for (int c = 0; c < 4; ++c) {
      const __m512 e0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88);
      const __m512 e1 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88);
      const __m512 e2 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xdd);
      const __m512 e3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xdd);
      _mm512_storeu_ps(dst + (0 + c) * ldd, _mm512_shuffle_f32x4(e0, e1, 0x88));
      _mm512_storeu_ps(dst + (4 + c) * ldd, _mm512_shuffle_f32x4(e2, e3, 0x88));
      _mm512_storeu_ps(dst + (8 + c) * ldd, _mm512_shuffle_f32x4(e0, e1, 0xdd));
      _mm512_storeu_ps(dst + (12 + c) * ldd, _mm512_shuffle_f32x4(e2, e3, 0xdd));
    }
  }
  // 2^x = 2^n * 2^f with n = round(x), |f| <= 1/2; 2^f by its degree-7 Taylor
  // polynomial in f ln2 (relative error < 6e-9, below fp32's 6e-8 roundoff).
  // x is clamped to [-127, 127]; n = -127 gives exponent field 0, i.e. exactly 0.
  // The clamp operands are ordered so a NaN x stays NaN.
  static V exp2(V x) {
    x = _mm512_min_ps(_mm512_set1_ps(127.0f), _mm512_max_ps(_mm512_set1_ps(-127.0f), x));
    const V n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const V f = _mm512_sub_ps(x, n);
    V p = _mm512_set1_ps(1.525273380405984e-05f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.5403530393381608e-04f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3333558146428443e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618129107628477e-03f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550410866482158e-02f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402265069591007e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471805599453e-01f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    const __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  }
};

#include "backend/cpu/attention_flash.inc"

}  // namespace
}  // namespace kiln::attention_detail::avx512

namespace kiln::attention_detail {
void forward_head_avx512(const ForwardHeadArgs& args) { avx512::forward_head(args); }
void backward_group_avx512(const BackwardGroupArgs& args) { avx512::backward_group(args); }
void decode_group_avx512(const DecodeGroupArgs& args) { avx512::decode_group(args); }
}  // namespace kiln::attention_detail
