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

// The operand kinds, each a step of K and how a step is loaded and multiplied:
// fp32 (16 values, FMA), bf16 through VDPBF16PS (32 values), bf16 widened to fp32
// (16 values, a 16-bit shift, FMA). A masked load past the end gives zeros, which
// add exact zeros.
struct F32 {
  using T = float;
  using V = __m512;
  static constexpr int kStep = 16;
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V load_tail(const T* p, int n) { return _mm512_maskz_loadu_ps(__mmask16((1u << n) - 1), p); }
  static __m512 mac(__m512 acc, V x, V w) { return _mm512_fmadd_ps(x, w, acc); }
};

struct Bf16Dot {
  using T = uint16_t;
  using V = __m512bh;
  static constexpr int kStep = 32;
  static V load(const T* p) { return (__m512bh)_mm512_loadu_si512(p); }
  static V load_tail(const T* p, int n) {
    return (__m512bh)_mm512_maskz_loadu_epi16(__mmask32((uint64_t(1) << n) - 1), p);
  }
  static __m512 mac(__m512 acc, V x, V w) { return _mm512_dpbf16_ps(acc, x, w); }
};

struct Bf16Widen {  // bf16 is the top half of an fp32
  using T = uint16_t;
  using V = __m512;
  static constexpr int kStep = 16;
  static V widen(__m256i v) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
  }
  static V load(const T* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
  static V load_tail(const T* p, int n) { return widen(_mm256_maskz_loadu_epi16(__mmask16((1u << n) - 1), p)); }
  static __m512 mac(__m512 acc, V x, V w) { return _mm512_fmadd_ps(x, w, acc); }
};

// y[r, j] (=/+=) sum_k x[r, k] w[j, k] for j < kW, r < kR.
template <int kW, int kR, class Op>
struct Block {
  using T = typename Op::T;
  static void run(float* y, int64_t ldy, const T* x, const T* w, int64_t K, bool accumulate) {
    __m512 acc[kW][kR];
    for (int j = 0; j < kW; ++j)
      for (int r = 0; r < kR; ++r) acc[j][r] = _mm512_setzero_ps();
    const auto step = [&](int64_t k, int tail) {
      typename Op::V xv[kR];
      for (int r = 0; r < kR; ++r) xv[r] = tail ? Op::load_tail(x + r * K + k, tail) : Op::load(x + r * K + k);
      for (int j = 0; j < kW; ++j) {
        const typename Op::V wv = tail ? Op::load_tail(w + j * K + k, tail) : Op::load(w + j * K + k);
        for (int r = 0; r < kR; ++r) acc[j][r] = Op::mac(acc[j][r], xv[r], wv);
      }
    };
    int64_t k = 0;
    for (; k + Op::kStep <= K; k += Op::kStep) step(k, 0);
    if (k < K) step(k, int(K - k));
    for (int r = 0; r < kR; ++r)
      for (int j = 0; j < kW; ++j) {
        const float s = _mm512_reduce_add_ps(acc[j][r]);
        float& out = y[r * ldy + j];
        out = accumulate ? out + s : s;
      }
  }
};

// One block of kW weight rows against every row of x, kPassRows rows at a time.
template <int kW, class Op, typename T>
void block_all_rows(float* y, const T* x, const T* w, int64_t M, int64_t N, int64_t K,
                    bool accumulate) {
  int64_t m = 0;
  for (; m + kPassRows <= M; m += kPassRows)
    Block<kW, kPassRows, Op>::run(y + m * N, N, x + m * K, w, K, accumulate);
  switch (M - m) {
    case 1: Block<kW, 1, Op>::run(y + m * N, N, x + m * K, w, K, accumulate); break;
    case 2: Block<kW, 2, Op>::run(y + m * N, N, x + m * K, w, K, accumulate); break;
    case 3: Block<kW, 3, Op>::run(y + m * N, N, x + m * K, w, K, accumulate); break;
    default: break;
  }
}

template <class Op, typename T>
void gemv(float* y, const T* x, const T* W, int64_t M, int64_t N, int64_t K, bool accumulate) {
  const int64_t blocks = (N + kBlockRows - 1) / kBlockRows;
#pragma omp parallel for schedule(static) if (M * N * K >= kParallelMacs)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t n = b * kBlockRows;
    const T* w = W + n * K;
    float* yb = y + n;
    switch (N - n < kBlockRows ? N - n : kBlockRows) {
      case 1: block_all_rows<1, Op>(yb, x, w, M, N, K, accumulate); break;
      case 2: block_all_rows<2, Op>(yb, x, w, M, N, K, accumulate); break;
      case 3: block_all_rows<3, Op>(yb, x, w, M, N, K, accumulate); break;
      default: block_all_rows<kBlockRows, Op>(yb, x, w, M, N, K, accumulate); break;
    }
  }
}

}  // namespace

void gemv_f32_avx512(float* y, const float* x, const float* W, int64_t M, int64_t N, int64_t K,
                     bool accumulate) {
  gemv<F32>(y, x, W, M, N, K, accumulate);
}

void gemv_bf16_avx512(float* y, const uint16_t* x, const uint16_t* W, int64_t M, int64_t N,
                      int64_t K, bool accumulate, bool hw_bf16) {
  if (hw_bf16)
    gemv<Bf16Dot>(y, x, W, M, N, K, accumulate);
  else
    gemv<Bf16Widen>(y, x, W, M, N, K, accumulate);
}

}  // namespace kiln::cpu
