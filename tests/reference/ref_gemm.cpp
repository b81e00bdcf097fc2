// fp64 oracle for matmul and the fused classifier + cross-entropy (reference_ops.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "reference/reference_ops.h"

namespace kiln::ref {

// C[M, N] (= or +=) op(A)[M, K] op(B)[K, N]; A stored [M, K] or [K, M] (trans_a),
// B stored [K, N] or [N, K] (trans_b).
void matmul(Vec& C, const Vec& A, const Vec& B, int64_t M, int64_t N, int64_t K, bool trans_a,
            bool trans_b, bool accumulate) {
  C.resize(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = trans_a ? A[k * M + i] : A[i * K + k];
        const double b = trans_b ? B[j * K + k] : B[k * N + j];
        sum += a * b;
      }
      C[i * N + j] = accumulate ? C[i * N + j] + sum : sum;
    }
  }
}

// losses[N] (=); when dx: dx[N, C] (=) dlogits W, dW[V, C] (+=) dlogits^T x,
// dlogits_i = (softmax(x_i W^T) - onehot(targets[i])) * dloss; targets[i] < 0: no target.
void classifier_forward_backward(Vec& losses, Vec* dx, Vec* dW, const Vec& x, const Vec& W,
                                 const std::vector<int32_t>& targets, int64_t N, int C, int V,
                                 double dloss) {
  losses.assign(size_t(N), 0.0);
  if (dx) dx->assign(size_t(N) * C, 0.0);
  if (dW) dW->resize(size_t(V) * C, 0.0);
  Vec logits(static_cast<size_t>(V));
  for (int64_t i = 0; i < N; ++i) {
    const int32_t target = targets[i];
    if (target < 0) continue;
    for (int v = 0; v < V; ++v) {
      double sum = 0.0;
      for (int c = 0; c < C; ++c) sum += x[i * C + c] * W[size_t(v) * C + c];
      logits[v] = sum;
    }
    const double m = *std::max_element(logits.begin(), logits.end());
    double sum_exp = 0.0;
    for (int v = 0; v < V; ++v) sum_exp += std::exp(logits[v] - m);
    const double lse = m + std::log(sum_exp);
    losses[i] = lse - logits[target];
    if (!dx) continue;
    for (int v = 0; v < V; ++v) {
      const double dlogit = (std::exp(logits[v] - lse) - (v == target ? 1.0 : 0.0)) * dloss;
      for (int c = 0; c < C; ++c) {
        (*dx)[i * C + c] += dlogit * W[size_t(v) * C + c];
        (*dW)[size_t(v) * C + c] += dlogit * x[i * C + c];
      }
    }
  }
}

}  // namespace kiln::ref
