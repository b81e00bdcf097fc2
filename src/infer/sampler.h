// Choosing the next token from the logits: greedy, temperature, nucleus (top-p).
#pragma once
#include "core/rng.h"

namespace kiln {

// Throws InputError naming --temperature unless temperature >= 0 (and finite), and
// naming --top-p unless 0 < top_p <= 1. Callers validate once before a run.
void validate_sampling(float temperature, float top_p, int top_k = 0);

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
// top_k > 0 first keeps only the tokens whose logit is at least the k-th largest
// (ties at the k-th value are all kept, as transformers' TopKLogitsWarper); 0 = off.
int sample_next(const float* logits, int V, float temperature, float top_p, Rng& rng,
                int top_k = 0);

// transformers' repetition penalty on logits[V] in place: for every distinct id in
// `history`, a positive logit is divided by `penalty`, a negative one multiplied.
// penalty must be > 0 (1 = off; InputError naming --repetition-penalty otherwise).
void apply_repetition_penalty(float* logits, int V, const int* history, size_t n, float penalty);

// The argmax of logits[V], lowest index on ties.
int argmax(const float* logits, int V);

}  // namespace kiln
