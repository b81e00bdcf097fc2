// AVX-512 bodies of the int8 linear layers (int8_linear.h). Per group of 64 values
// and pair (weight row, x row), VPDPBUSD multiplies the unsigned weight bytes by
// the signed x bytes into 16 int32 lanes (each the sum of 4 products), less the
// lanes' share of the +128 offset (Int8Rows::corr), which leaves the exact signed
// sums; without AVX512_VNNI both sides are widened to 16 bits and VPMADDWD does
// the same exactly. The lanes are then scaled by s sx into an fp32 sum.
// GCC 12's AVX-512 headers warn about their own _mm512_undefined_*() placeholders
// once inlined (GCC bug 105593); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "backend/cpu/int8_linear.h"
#include "backend/cpu/int8_tiles.h"

// VPDPBUSD only in the functions that the VNNI dispatch reaches.
#define KILN_VNNI __attribute__((target("avx512vnni")))

namespace kiln::cpu {
namespace {

template <int kW, int kR>
inline void store_sums(float* y, int64_t ldy, __m512 (&sum)[kW][kR], bool accumulate) {
  for (int r = 0; r < kR; ++r)
    for (int j = 0; j < kW; ++j) {
      const float s = _mm512_reduce_add_ps(sum[j][r]);
      float& out = y[r * ldy + j];
      out = accumulate ? out + s : s;
    }
}

template <int kW, int kR>
struct VnniBlock {
  KILN_VNNI static void run(float* y, int64_t ldy, const int8_t* xq, const float* xs,
                            const int32_t* xc, const uint8_t* wq, const float* ws, int64_t Kp,
                            int64_t G, bool accumulate) {
    __m512 sum[kW][kR];
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) sum[j][r] = _mm512_setzero_ps();
    for (int64_t g = 0; g < G; ++g) {
      __m512i xv[kR], cv[kR];
      float sx[kR];
      for (int r = 0; r < kR; ++r) {
        xv[r] = _mm512_loadu_si512(xq + r * Kp + g * kInt8Group);
        cv[r] = _mm512_loadu_si512(xc + (r * G + g) * 16);
        sx[r] = xs[r * G + g];
      }
      for (int j = 0; j < kW; ++j) {
        const __m512i wv = _mm512_loadu_si512(wq + j * Kp + g * kInt8Group);
        // The next block's rows, one block ahead of use (a prefetch past the end is
        // harmless; two blocks ahead measured slower).
        _mm_prefetch(reinterpret_cast<const char*>(wq + (j + kW) * Kp + g * kInt8Group),
                     _MM_HINT_T0);
        const float sw = ws[j * G + g];
        for (int r = 0; r < kR; ++r) {
          const __m512i d =
              _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[r]), cv[r]);
          sum[j][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(sw * sx[r]), sum[j][r]);
        }
      }
    }
    store_sums<kW, kR>(y, ldy, sum, accumulate);
  }
};

template <int kW, int kR>
struct WideBlock {
  static void run(float* y, int64_t ldy, const int8_t* xq, const float* xs, const int32_t*,
                  const uint8_t* wq, const float* ws, int64_t Kp, int64_t G, bool accumulate) {
    __m512 sum[kW][kR];
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) sum[j][r] = _mm512_setzero_ps();
    const __m512i offset = _mm512_set1_epi16(128);
    for (int64_t g = 0; g < G; ++g) {
      __m512i xa[kR], xb[kR];
      float sx[kR];
      for (int r = 0; r < kR; ++r) {
        const int8_t* p = xq + r * Kp + g * kInt8Group;
        xa[r] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        xb[r] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32)));
        sx[r] = xs[r * G + g];
      }
      for (int j = 0; j < kW; ++j) {
        const uint8_t* p = wq + j * Kp + g * kInt8Group;
        const __m512i wa = _mm512_sub_epi16(
            _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), offset);
        const __m512i wb = _mm512_sub_epi16(
            _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32))),
            offset);
        const float sw = ws[j * G + g];
        for (int r = 0; r < kR; ++r) {
          const __m512i d =
              _mm512_add_epi32(_mm512_madd_epi16(wa, xa[r]), _mm512_madd_epi16(wb, xb[r]));
          sum[j][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), _mm512_set1_ps(sw * sx[r]), sum[j][r]);
        }
      }
    }
    store_sums<kW, kR>(y, ldy, sum, accumulate);
  }
};

}  // namespace

void int8_body_avx512(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M,
                      int64_t N, int64_t K, bool accumulate, bool vnni) {
  if (vnni)
    int8_tiles::run<VnniBlock>(y, x, wq, ws, M, N, K, accumulate);
  else
    int8_tiles::run<WideBlock>(y, x, wq, ws, M, N, K, accumulate);
}

}  // namespace kiln::cpu
