#include "infer/generator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "infer/sampler.h"

namespace kiln {

Generator::Generator(Backend& backend, const ModelConfig& config, const WeightsView& weights,
                     int max_len, int prefill_chunk)
    : decoder_(backend, config, weights, 1, max_len, prefill_chunk), history_(size_t(max_len)) {}

const float* Generator::forward(int token, int pos) {
  const int32_t t = token, p = pos;
  const float* logits = decoder_.decode(&t, &p, 1);
  history_[size_t(pos)] = token;
  return logits;
}

const float* Generator::prefill(const std::vector<int>& tokens, int pos0) {
  if (tokens.empty()) fail_input("generator", "prefill needs at least one token", ">= 1", "0");
  const std::vector<int32_t> ids(tokens.begin(), tokens.end());
  const float* logits = decoder_.prefill(0, ids.data(), int(ids.size()), pos0);
  std::copy(tokens.begin(), tokens.end(), history_.begin() + pos0);
  return logits;
}

LoadedGenerator::LoadedGenerator(Backend& backend, const ModelConfig& config,
                                 const float* host_params, int max_len, WeightFormat format)
    : weights_(backend, config, host_params, format),
      generator_(backend, config, weights_.view(), max_len) {}

GenerationStats generate(Generator& generator, const std::vector<int>& prompt, int steps,
                         float temperature, float top_p, uint64_t seed,
                         const std::function<bool(int token)>& on_token) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_p = top_p;
  params.seed = seed;
  return generate(generator, prompt, steps, params, on_token);
}

GenerationStats generate(Generator& generator, const std::vector<int>& prompt, int steps,
                         const SamplingParams& params,
                         const std::function<bool(int token)>& on_token) {
  validate_sampling(params.temperature, params.top_p, params.top_k);
  std::vector<float> scratch;
  apply_repetition_penalty(scratch.data(), 0, nullptr, 0, params.repetition_penalty);  // checks it
  if (steps < 0) fail_input("--steps", "must be >= 0", ">= 0", std::to_string(steps));
  if (prompt.empty())
    fail_input("prompt", "is empty; it needs at least one token (e.g. BOS)", ">= 1 token", "0");
  const int max_len = generator.max_len();
  if (int64_t(prompt.size()) > max_len)
    fail_input("prompt", "is longer than the generator's max_len", "<= " + std::to_string(max_len) +
               " tokens", std::to_string(prompt.size()));
  const int V = generator.config().vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= V)
      fail_input("prompt", "token " + std::to_string(i) + " is outside the vocabulary",
                 "0.." + std::to_string(V - 1), std::to_string(prompt[i]));

  GenerationStats stats;
  stats.prompt_tokens = int(prompt.size());
  // The cached prefix to keep: at most all but the prompt's last token, whose
  // logits are needed.
  size_t keep = 0;
  if (params.reuse_cache) {
    const std::vector<int> cached = generator.history();
    while (keep + 1 < prompt.size() && keep < cached.size() && cached[keep] == prompt[keep]) ++keep;
  } else {
    generator.reset();
  }
  Timer timer;
  const float* logits =
      generator.prefill(std::vector<int>(prompt.begin() + keep, prompt.end()), int(keep));
  stats.prefill_s = timer.seconds();
  stats.reused_tokens = int(keep);

  const bool penalize = params.repetition_penalty != 1.0f;
  std::vector<int> sequence = prompt;  // for the repetition penalty
  Rng rng(params.seed);
  int pos = int(prompt.size());  // where the next sampled token goes
  for (int i = 0; i < steps; ++i) {
    if (pos >= max_len) {
      stats.reached_max_len = true;
      break;
    }
    timer.reset();
    if (penalize) {
      scratch.assign(logits, logits + V);
      apply_repetition_penalty(scratch.data(), V, sequence.data(), sequence.size(),
                               params.repetition_penalty);
      logits = scratch.data();
    }
    const int token = sample_next(logits, V, params.temperature, params.top_p, rng, params.top_k);
    if (penalize) sequence.push_back(token);
    stats.decode_s += timer.seconds();
    ++stats.generated_tokens;
    if (!on_token(token)) {
      stats.stopped_by_callback = true;
      break;
    }
    timer.reset();
    logits = generator.forward(token, pos++);
    stats.decode_s += timer.seconds();
  }
  if (pos >= max_len) stats.reached_max_len = true;
  return stats;
}

std::vector<std::vector<int>> generate_batch(
    Decoder& decoder, const std::vector<std::vector<int>>& prompts, int steps,
    const SamplingParams& params, const std::function<bool(int seq, int token)>& on_token,
    GenerationStats* stats_out) {
  validate_sampling(params.temperature, params.top_p, params.top_k);
  std::vector<float> scratch;
  apply_repetition_penalty(scratch.data(), 0, nullptr, 0, params.repetition_penalty);
  if (steps < 0) fail_input("--steps", "must be >= 0", ">= 0", std::to_string(steps));
  const int B = int(prompts.size()), V = decoder.config().vocab_size;
  if (B < 1 || B > decoder.max_batch())
    fail_input("--prompts", "number of prompts out of range",
               "1.." + std::to_string(decoder.max_batch()), std::to_string(B));
  for (int b = 0; b < B; ++b) {
    if (prompts[b].empty())
      fail_input("--prompts", "prompt " + std::to_string(b) + " is empty", ">= 1 token", "0");
    if (int64_t(prompts[b].size()) > decoder.max_len())
      fail_input("--prompts", "prompt " + std::to_string(b) + " is longer than max_len",
                 "<= " + std::to_string(decoder.max_len()), std::to_string(prompts[b].size()));
  }
  GenerationStats stats;
  decoder.reset();
  std::vector<std::vector<float>> logits(static_cast<size_t>(B),
                                         std::vector<float>(static_cast<size_t>(V)));
  std::vector<std::vector<int>> sequences = prompts, out(static_cast<size_t>(B));
  std::vector<int32_t> pos(static_cast<size_t>(B)), next(static_cast<size_t>(B));
  std::vector<bool> done(static_cast<size_t>(B), false);
  std::vector<Rng> rngs;
  for (int b = 0; b < B; ++b) rngs.emplace_back(params.seed + uint64_t(b));
  Timer timer;
  for (int b = 0; b < B; ++b) {
    const std::vector<int32_t> ids(prompts[b].begin(), prompts[b].end());
    const float* l = decoder.prefill(b, ids.data(), int(ids.size()), 0);
    std::copy(l, l + V, logits[b].begin());
    pos[b] = int32_t(ids.size());
    stats.prompt_tokens += int(ids.size());
  }
  stats.prefill_s = timer.seconds();
  const bool penalize = params.repetition_penalty != 1.0f;
  for (int step = 0; step < steps; ++step) {
    timer.reset();
    bool any = false;
    for (int b = 0; b < B; ++b) {
      if (done[b]) continue;
      if (pos[b] >= decoder.max_len()) {
        done[b] = true;
        stats.reached_max_len = true;
        continue;
      }
      if (penalize)
        apply_repetition_penalty(logits[b].data(), V, sequences[b].data(), sequences[b].size(),
                                 params.repetition_penalty);
      const int token =
          sample_next(logits[b].data(), V, params.temperature, params.top_p, rngs[b], params.top_k);
      ++stats.generated_tokens;
      if (!on_token(b, token)) {
        done[b] = true;
        stats.stopped_by_callback = true;
        continue;
      }
      out[b].push_back(token);
      if (penalize) sequences[b].push_back(token);
      next[b] = token;
      any = true;
    }
    if (!any) break;
    // Finished sequences are fed again at their last position (overwriting what
    // it holds), so the batch stays whole; their logits are ignored.
    std::vector<int32_t> at(pos);
    for (int b = 0; b < B; ++b)
      if (done[b]) {
        at[b] = std::max(0, pos[b] - 1);
        next[b] = 0;
      }
    const float* l = decoder.decode(next.data(), at.data(), B);
    for (int b = 0; b < B; ++b)
      if (!done[b]) {
        std::copy(l + size_t(b) * V, l + size_t(b + 1) * V, logits[b].begin());
        ++pos[b];
      }
    stats.decode_s += timer.seconds();
  }
  if (stats_out) *stats_out = stats;
  return out;
}

}  // namespace kiln
