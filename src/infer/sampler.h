// Choosing the next token from the logits: greedy, temperature, nucleus (top-p).
#pragma once
#include "core/rng.h"

namespace kiln {

// Throws InputError naming --temperature unless temperature >= 0 (and finite), and
// naming --top-p unless 0 < top_p <= 1. Callers validate once before a run.
void validate_sampling(float temperature, float top_p);

// The next token id in [0, V) from logits[V]:
// - temperature == 0: the argmax (greedy; the lowest index among equal maxima);
//   the rng is not used.
// - otherwise p = softmax(logits / temperature); then nucleus sampling: sort by p
//   (descending, ties by lower index) and keep the smallest prefix whose cumulative
//   probability reaches top_p (top_p = 1 keeps every token); draw one from the kept
//   tokens in proportion to p with one rng.uniform(). Deterministic for an rng state.
// Validates temperature and top_p as validate_sampling; a logit that is NaN or
// infinite is a RuntimeError (a broken model, not bad input).
// Scratch memory is per thread and grows only, so a decode loop allocates nothing
// after its first token.
int sample_next(const float* logits, int V, float temperature, float top_p, Rng& rng);

// The argmax of logits[V], lowest index on ties.
int argmax(const float* logits, int V);

}  // namespace kiln
