// AVX-512 cross-entropy row kernels (contracts in classifier_row.h), 16 logits
// per step. The exp is Kiln's own: only arguments x <= 0 occur (x = l - max).
// GCC 12's AVX-512 headers warn about their own _mm512_undefined_*() placeholders
// once inlined (GCC bug 105593); the warning says nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cmath>

#include "backend/cpu/classifier_row.h"

namespace kiln {
namespace {

// exp(x) for x <= 0: x = n ln2 + r with n = round(x / ln2), |r| <= ln2 / 2, then
// exp(x) = 2^n exp(r). exp(r) by its Taylor series to r^7: the truncation error
// is below |r|^8 / 8! < 6e-9, under an fp32 ulp, so the result is good to a few
// ulp from rounding alone. ln2 is split in two so n ln2 is exact to ~2^-40.
// scalef(p, n) = p 2^n underflows gracefully to subnormals and zero for x < -87.
inline __m512 exp_nonpositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // exp(-104) is already 0 in fp32
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

inline __mmask16 tail_mask(int remaining) { return __mmask16((1u << remaining) - 1); }

float row_max(const float* row, int V) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int j = 0;
  for (; j + 16 <= V; j += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(row + j));
  if (j < V)
    m = _mm512_mask_max_ps(m, tail_mask(V - j), m,
                           _mm512_maskz_loadu_ps(tail_mask(V - j), row + j));
  return _mm512_reduce_max_ps(m);
}

// sum_j exp(row[j] - m); when `store`, row[j] (=) exp(row[j] - m).
template <bool kStore>
double sum_exp(float* row, int V, float m) {
  const __m512 vm = _mm512_set1_ps(m);
  __m512 sum = _mm512_setzero_ps();
  int j = 0;
  for (; j + 16 <= V; j += 16) {
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(row + j), vm));
    if (kStore) _mm512_storeu_ps(row + j, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (j < V) {
    const __mmask16 k = tail_mask(V - j);
    const __m512 e = exp_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), vm));
    if (kStore) _mm512_mask_storeu_ps(row + j, k, e);
    sum = _mm512_mask_add_ps(sum, k, sum, e);
  }
  // 16 lane sums, each of V/16 terms, combined in double.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  double total = 0.0;
  for (float lane : lanes) total += lane;
  return total;
}

}  // namespace

float cross_entropy_row_loss_avx512(const float* logits, int V, int target) {
  const float m = row_max(logits, V);
  const double sum = sum_exp<false>(const_cast<float*>(logits), V, m);
  return float(double(m) + std::log(sum) - double(logits[target]));
}

float cross_entropy_row_grad_avx512(float* row, int V, int target, float dloss) {
  const float logit_target = row[target];
  const float m = row_max(row, V);
  const double sum = sum_exp<true>(row, V, m);  // row <- exp(l - m)
  // dlogits = softmax * dloss - onehot * dloss
  const __m512 scale = _mm512_set1_ps(float(double(dloss) / sum));
  int j = 0;
  for (; j + 16 <= V; j += 16)
    _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), scale));
  if (j < V) {
    const __mmask16 k = tail_mask(V - j);
    _mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), scale));
  }
  row[target] -= dloss;
  return float(double(m) + std::log(sum) - double(logit_target));
}

}  // namespace kiln
