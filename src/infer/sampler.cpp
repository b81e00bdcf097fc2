#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"

namespace kiln {
namespace {

std::string number(float v) {
  std::ostringstream s;
  s << v;
  return s.str();
}

struct Candidate {
  float p;    // unnormalised probability exp((logit - max) / temperature)
  int index;  // token id
};

// Draws index i with probability p_i / sum(p) by walking the cumulative sum of `p`
// in the given order; u in [0, 1). The walk's own running sum is the total, so the
// draw always lands on a token with p > 0.
template <typename Weight, typename Index>
int draw(int n, Weight weight, Index index, double total, float u) {
  const double r = double(u) * total;
  double cumulative = 0.0;
  int last_positive = index(0);
  for (int i = 0; i < n; ++i) {
    const double w = weight(i);
    if (w <= 0.0) continue;
    cumulative += w;
    last_positive = index(i);
    if (r < cumulative) return index(i);
  }
  return last_positive;  // only reached through rounding of `total`
}

}  // namespace

void validate_sampling(float temperature, float top_p, int top_k) {
  if (top_k < 0)
    fail_input("--top-k", "must be >= 0 (0 keeps every token)", ">= 0", std::to_string(top_k));
  if (!(std::isfinite(temperature) && temperature >= 0.0f))
    fail_input("--temperature", "must be a finite number >= 0 (0 means greedy)", ">= 0",
               number(temperature));
  if (!(top_p > 0.0f && top_p <= 1.0f))
    fail_input("--top-p", "must be in (0, 1] (1 keeps every token)", "0 < top_p <= 1",
               number(top_p));
}

int argmax(const float* logits, int V) {
  int best = 0;
  for (int i = 1; i < V; ++i)
    if (logits[i] > logits[best]) best = i;  // strict: the lowest index wins ties
  return best;
}

void apply_repetition_penalty(float* logits, int V, const int* history, size_t n, float penalty) {
  if (!(std::isfinite(penalty) && penalty > 0.0f))
    fail_input("--repetition-penalty", "must be a finite number > 0 (1 = off)", "> 0",
               number(penalty));
  if (penalty == 1.0f) return;
  thread_local std::vector<uint8_t> seen;
  seen.assign(size_t(V), 0);
  for (size_t i = 0; i < n; ++i) {
    const int id = history[i];
    if (id < 0 || id >= V || seen[id]) continue;
    seen[id] = 1;
    logits[id] = logits[id] > 0.0f ? logits[id] / penalty : logits[id] * penalty;
  }
}

int sample_next(const float* logits, int V, float temperature, float top_p, Rng& rng,
                int top_k) {
  validate_sampling(temperature, top_p, top_k);
  if (V <= 0) fail_runtime("sampler", "empty vocabulary");
  // One vectorisable pass: the max, and x * 0 summed, which is NaN exactly when
  // some logit is NaN or infinite.
  float max_logit = -INFINITY, poison = 0.0f;
#pragma omp simd reduction(max : max_logit) reduction(+ : poison)
  for (int i = 0; i < V; ++i) {
    max_logit = std::max(max_logit, logits[i]);
    poison += logits[i] * 0.0f;
  }
  if (poison != 0.0f)
    for (int i = 0; i < V; ++i)
      if (!std::isfinite(logits[i]))
        fail_runtime("sampler", "logit " + std::to_string(i) + " is " + number(logits[i]) +
                                    "; the model produced non-finite values");
  if (temperature == 0.0f) {
    for (int i = 0; i < V; ++i)
      if (logits[i] == max_logit) return i;  // the lowest index among equal maxima
  }

  // p_i = exp((l_i - max) / temperature): the softmax numerators, the largest is 1.
  thread_local std::vector<float> probs;
  thread_local std::vector<Candidate> candidates;
  probs.resize(V);
  // Top-k: the k-th largest logit is the cut (everything at or above it stays).
  float kth = -INFINITY;
  if (top_k > 0 && top_k < V) {
    probs.assign(logits, logits + V);
    std::nth_element(probs.begin(), probs.begin() + (top_k - 1), probs.end(), std::greater<>());
    kth = probs[top_k - 1];
  }
  double total = 0.0;
  for (int i = 0; i < V; ++i) {
    probs[i] = logits[i] >= kth ? std::exp((logits[i] - max_logit) / temperature) : 0.0f;
    total += probs[i];
  }
  if (top_p >= 1.0f || V == 1)
    return draw(V, [&](int i) { return double(probs[i]); }, [](int i) { return i; }, total,
                rng.uniform());

  // Nucleus. The most probable token (p = 1 before normalising) is always in it.
  // Of the other V - 1 tokens, those with probability below (1 - top_p) / (V - 1)
  // together hold less than 1 - top_p, so the tokens kept by that cut already
  // reach top_p and the nucleus lies among them. Dropping the rest first keeps the
  // sort short.
  const double cut = std::min((1.0 - top_p) / (V - 1) * total, 1.0);
  candidates.clear();
  for (int i = 0; i < V; ++i)
    if (probs[i] >= cut) candidates.push_back({probs[i], i});
  // The smallest prefix (in the order `before`) whose mass reaches top_p of the
  // total. The prefix is usually short, so rather than sorting every candidate:
  // grow a front block of the best k (nth_element, linear time; k x4 each round)
  // until its mass reaches top_p, then sort only that block. With the index as
  // tie-break the order is total, so the result equals that of a full sort.
  const auto before = [](const Candidate& a, const Candidate& b) {
    return a.p > b.p || (a.p == b.p && a.index < b.index);
  };
  const double target = double(top_p) * total;
  const int n = int(candidates.size());
  int front = 0;
  double front_mass = 0.0;
  for (int k = std::min(n, 64);; k = std::min(n, k * 4)) {
    std::nth_element(candidates.begin() + front, candidates.begin() + k, candidates.end(), before);
    for (; front < k; ++front) front_mass += candidates[front].p;
    if (front_mass >= target || front == n) break;
  }
  std::sort(candidates.begin(), candidates.begin() + front, before);
  double kept_mass = 0.0;
  int kept = 0;
  while (kept < front && kept_mass < target) kept_mass += candidates[kept++].p;
  return draw(
      kept, [&](int i) { return double(candidates[i].p); },
      [&](int i) { return candidates[i].index; }, kept_mass, rng.uniform());
}

}  // namespace kiln
