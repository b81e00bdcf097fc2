// AVX-512 bodies of the few-row linear layers (contracts in gemv.h). Four rows of
// W are streamed together, so each x vector loaded serves four weight rows and
// the four rows' sums are independent dependency chains. bf16 operands use
// VDPBF16PS where the CPU has AVX512_BF16 (a bf16 x bf16 product is exact in
// fp32, and the two products of a pair are added to the fp32 sum one after the
// other); elsewhere they are widened to fp32 (a 16-bit shift) and multiplied
// with FMAs. Either way a y element is one fixed sequence of fp32 additions.
// GCC 12's AVX-512 headers warn about their own _mm512_undefined_*() placeholders
// once inlined (GCC bug 105593); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstdint>

#include "backend/cpu/gemv.h"

namespace kiln::cpu {
namespace {

// Weight rows per block; x rows per pass over a block (more rows of x reread the
// block, which is then in L1).
constexpr int kBlockRows = 4;
constexpr int kPassRows = 4;

// Multiply-adds below which the product runs on one thread (gemv.cpp has the same).
constexpr int64_t kParallelMacs = int64_t(1) << 18;

// The operand kinds: fp32, bf16 through VDPBF16PS, bf16 widened to fp32.
enum class Kind { f32, bf16_dot, bf16_widen };

template <int kW, int kR, Kind kKind>
struct Block;

// y[r, j] (=/+=) sum_k x[r, k] w[j, k] for j < kW, r < kR.
template <int kW, int kR>
struct Block<kW, kR, Kind::f32> {
  static void run(float* y, int64_t ldy, const float* x, const float* w, int64_t K,
                  bool accumulate) {
    __m512 acc[kW][kR];
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      __m512 xv[kR];
      for (int r = 0; r < kR; ++r) xv[r] = _mm512_loadu_ps(x + r * K + k);
      for (int j = 0; j < kW; ++j) {
        const __m512 wv = _mm512_loadu_ps(w + j * K + k);
        for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_fmadd_ps(xv[r], wv, acc[j][r]);
      }
    }
    if (k < K) {
      const __mmask16 m = __mmask16((1u << (K - k)) - 1);
      __m512 xv[kR];
      for (int r = 0; r < kR; ++r) xv[r] = _mm512_maskz_loadu_ps(m, x + r * K + k);
      for (int j = 0; j < kW; ++j) {
        const __m512 wv = _mm512_maskz_loadu_ps(m, w + j * K + k);
        for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_fmadd_ps(xv[r], wv, acc[j][r]);
      }
    }
    store(y, ldy, acc, accumulate);
  }
  static void store(float* y, int64_t ldy, __m512 (&acc)[kW][kR], bool accumulate) {
    for (int r = 0; r < kR; ++r)
      for (int j = 0; j < kW; ++j) {
        const float s = _mm512_reduce_add_ps(acc[j][r]);
        float& out = y[r * ldy + j];
        out = accumulate ? out + s : s;
      }
  }
};

template <int kW, int kR>
struct Block<kW, kR, Kind::bf16_dot> {
  static void run(float* y, int64_t ldy, const uint16_t* x, const uint16_t* w, int64_t K,
                  bool accumulate) {
    __m512 acc[kW][kR];
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      __m512bh xv[kR];
      for (int r = 0; r < kR; ++r) xv[r] = (__m512bh)_mm512_loadu_si512(x + r * K + k);
      for (int j = 0; j < kW; ++j) {
        const __m512bh wv = (__m512bh)_mm512_loadu_si512(w + j * K + k);
        for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_dpbf16_ps(acc[j][r], xv[r], wv);
      }
    }
    if (k < K) {  // zeros past the end add exact zeros
      const __mmask32 m = __mmask32((uint64_t(1) << (K - k)) - 1);
      __m512bh xv[kR];
      for (int r = 0; r < kR; ++r) xv[r] = (__m512bh)_mm512_maskz_loadu_epi16(m, x + r * K + k);
      for (int j = 0; j < kW; ++j) {
        const __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, w + j * K + k);
        for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_dpbf16_ps(acc[j][r], xv[r], wv);
      }
    }
    Block<kW, kR, Kind::f32>::store(y, ldy, acc, accumulate);
  }
};

// 16 bf16 values widened to fp32 (bf16 is the top half of an fp32).
inline __m512 widen(__m256i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16)); }

template <int kW, int kR>
struct Block<kW, kR, Kind::bf16_widen> {
  static void run(float* y, int64_t ldy, const uint16_t* x, const uint16_t* w, int64_t K,
                  bool accumulate) {
    __m512 acc[kW][kR];
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
      __m512 xv[kR];
      for (int r = 0; r < kR; ++r)
        xv[r] = widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + r * K + k)));
      for (int j = 0; j < kW; ++j) {
        const __m512 wv = widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * K + k)));
        for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_fmadd_ps(xv[r], wv, acc[j][r]);
      }
    }
    if (k < K) {
      const __mmask16 m = __mmask16((1u << (K - k)) - 1);
      __m512 xv[kR];
      for (int r = 0; r < kR; ++r) xv[r] = widen(_mm256_maskz_loadu_epi16(m, x + r * K + k));
      for (int j = 0; j < kW; ++j) {
        const __m512 wv = widen(_mm256_maskz_loadu_epi16(m, w + j * K + k));
        for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_fmadd_ps(xv[r], wv, acc[j][r]);
      }
    }
    Block<kW, kR, Kind::f32>::store(y, ldy, acc, accumulate);
  }
};

// One block of kW weight rows against every row of x, kPassRows rows at a time.
template <int kW, Kind kKind, typename T>
void block_all_rows(float* y, const T* x, const T* w, int64_t M, int64_t N, int64_t K,
                    bool accumulate) {
  int64_t m = 0;
  for (; m + kPassRows <= M; m += kPassRows)
    Block<kW, kPassRows, kKind>::run(y + m * N, N, x + m * K, w, K, accumulate);
  switch (M - m) {
    case 1: Block<kW, 1, kKind>::run(y + m * N, N, x + m * K, w, K, accumulate); break;
    case 2: Block<kW, 2, kKind>::run(y + m * N, N, x + m * K, w, K, accumulate); break;
    case 3: Block<kW, 3, kKind>::run(y + m * N, N, x + m * K, w, K, accumulate); break;
    default: break;
  }
}

template <Kind kKind, typename T>
void gemv(float* y, const T* x, const T* W, int64_t M, int64_t N, int64_t K, bool accumulate) {
  const int64_t blocks = (N + kBlockRows - 1) / kBlockRows;
#pragma omp parallel for schedule(static) if (M * N * K >= kParallelMacs)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t n = b * kBlockRows;
    const T* w = W + n * K;
    float* yb = y + n;
    switch (N - n < kBlockRows ? N - n : kBlockRows) {
      case 1: block_all_rows<1, kKind>(yb, x, w, M, N, K, accumulate); break;
      case 2: block_all_rows<2, kKind>(yb, x, w, M, N, K, accumulate); break;
      case 3: block_all_rows<3, kKind>(yb, x, w, M, N, K, accumulate); break;
      default: block_all_rows<kBlockRows, kKind>(yb, x, w, M, N, K, accumulate); break;
    }
  }
}

}  // namespace

void gemv_f32_avx512(float* y, const float* x, const float* W, int64_t M, int64_t N, int64_t K,
                     bool accumulate) {
  gemv<Kind::f32>(y, x, W, M, N, K, accumulate);
}

void gemv_bf16_avx512(float* y, const uint16_t* x, const uint16_t* W, int64_t M, int64_t N,
                      int64_t K, bool accumulate, bool hw_bf16) {
  if (hw_bf16)
    gemv<Kind::bf16_dot>(y, x, W, M, N, K, accumulate);
  else
    gemv<Kind::bf16_widen>(y, x, W, M, N, K, accumulate);
}

}  // namespace kiln::cpu
