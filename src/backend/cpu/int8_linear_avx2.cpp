// AVX2 body of the int8 linear layers (int8_linear.h): per weight row and x row,
// each group of 64 bytes is widened to 16 bits in four parts and multiplied with
// VPMADDWD (exact int32 pair sums), then scaled by s sx into an fp32 sum. With 16
// vector registers, one (weight row, x row) pair is summed at a time.
#include <immintrin.h>

#include "backend/cpu/int8_linear.h"
#include "backend/cpu/int8_tiles.h"

namespace kiln::cpu {
namespace {

inline float reduce_add(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

template <int kW, int kR>
struct Avx2Block {
  static void run(float* y, int64_t ldy, const int8_t* xq, const float* xs, const int32_t*,
                  const uint8_t* wq, const float* ws, int64_t Kp, int64_t G, bool accumulate) {
    const __m256i offset = _mm256_set1_epi16(128);
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) {
        __m256 sum = _mm256_setzero_ps();
        for (int64_t g = 0; g < G; ++g) {
          const uint8_t* w = wq + j * Kp + g * kInt8Group;
          const int8_t* x = xq + r * Kp + g * kInt8Group;
          __m256i d = _mm256_setzero_si256();
          for (int c = 0; c < kInt8Group; c += 16) {
            const __m256i wv = _mm256_sub_epi16(
                _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + c))),
                offset);
            const __m256i xv =
                _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + c)));
            d = _mm256_add_epi32(d, _mm256_madd_epi16(wv, xv));
          }
          sum = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d), _mm256_set1_ps(ws[j * G + g] * xs[r * G + g]),
                                sum);
        }
        const float s = reduce_add(sum);
        float& out = y[r * ldy + j];
        out = accumulate ? out + s : s;
      }
  }
};

}  // namespace

void int8_body_avx2(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M,
                    int64_t N, int64_t K, bool accumulate) {
  int8_tiles::run<Avx2Block>(y, x, wq, ws, M, N, K, accumulate);
}

}  // namespace kiln::cpu
