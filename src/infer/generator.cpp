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
                                 const float* host_params, int max_len)
    : weights_(backend, config, host_params),
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

}  // namespace kiln
