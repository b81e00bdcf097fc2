// Scalar cross-entropy row kernels and the run-time dispatch (see classifier_row.h).
// Stable logsumexp: lse = m + log(sum_j exp(l_j - m)) with m = max_j l_j, so no
// exp overflows; the sum and the log are taken in double (V terms of size <= 1).
#include "backend/cpu/classifier_row.h"

#include <algorithm>
#include <cmath>

#include "core/cpu_features.h"

namespace kiln {

float cross_entropy_row_loss_scalar(const float* logits, int V, int target) {
  const float m = *std::max_element(logits, logits + V);
  double sum = 0.0;
  for (int j = 0; j < V; ++j) sum += std::exp(logits[j] - m);
  return float(double(m) + std::log(sum) - double(logits[target]));
}

float cross_entropy_row_grad_scalar(float* row, int V, int target, float dloss) {
  const float logit_target = row[target];
  const float m = *std::max_element(row, row + V);
  double sum = 0.0;
  for (int j = 0; j < V; ++j) {  // row <- exp(l - m), the unnormalised softmax
    const float e = std::exp(row[j] - m);
    row[j] = e;
    sum += e;
  }
  // dlogits = softmax * dloss - onehot * dloss
  const float scale = float(double(dloss) / sum);
  for (int j = 0; j < V; ++j) row[j] *= scale;
  row[target] -= dloss;
  return float(double(m) + std::log(sum) - double(logit_target));
}

float cross_entropy_row_loss(const float* logits, int V, int target) {
  if (active_isa() == Isa::avx512) return cross_entropy_row_loss_avx512(logits, V, target);
  return cross_entropy_row_loss_scalar(logits, V, target);
}

float cross_entropy_row_grad(float* row, int V, int target, float dloss) {
  if (active_isa() == Isa::avx512) return cross_entropy_row_grad_avx512(row, V, target, dloss);
  return cross_entropy_row_grad_scalar(row, V, target, dloss);
}

}  // namespace kiln
