// The per-row part of cross-entropy over one logits row [V] (classifier.cpp),
// dispatched at run time to a scalar or an AVX-512 body.
#pragma once
#include <cstdint>

namespace kiln {

// Returns logsumexp(logits) - logits[target]; logits untouched. 0 <= target < V.
float cross_entropy_row_loss(const float* logits, int V, int target);

// Returns the same loss and overwrites the row with its gradient:
// row[j] (=) (softmax(row)_j - [j == target]) * dloss.
float cross_entropy_row_grad(float* row, int V, int target, float dloss);

// The ISA-specific bodies, same contracts (classifier_row.cpp, classifier_row_avx512.cpp).
float cross_entropy_row_loss_scalar(const float* logits, int V, int target);
float cross_entropy_row_grad_scalar(float* row, int V, int target, float dloss);
float cross_entropy_row_loss_avx512(const float* logits, int V, int target);
float cross_entropy_row_grad_avx512(float* row, int V, int target, float dloss);

}  // namespace kiln
