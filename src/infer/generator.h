// Sampling one sequence: the Backend decoder (nn/decoder.h) with the sequence in
// cache slot 0, fed token by token or a prompt at a time, and generate(), the
// loop that samples from its logits and streams each token.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "model/config.h"
#include "nn/decoder.h"

namespace kiln {

class Generator {
 public:
  // Decodes from `weights` (backend memory, ParamLayout(config)'s layout, alive as
  // long as the Generator) through `backend`. max_len (the longest sequence, prompt
  // included) must be in [1, config.max_seq_len]. Throws InputError.
  Generator(Backend& backend, const ModelConfig& config, const WeightsView& weights, int max_len,
            int prefill_chunk = 256);

  // Feeds `token` at position `pos` (0-based) and returns the logits [V] for the
  // token at pos + 1 (host memory, valid until the next call). Positions 0 ..
  // pos-1 must have been fed since the last reset() (pos may go back to rewind).
  // Throws InputError for a token outside [0, V) or a position outside
  // [0, min(max_len - 1, fed positions)].
  const float* forward(int token, int pos);

  // Feeds tokens at positions pos0, pos0 + 1, ... in one batched pass (chunks of
  // prefill_chunk) and returns the logits after the last one. Not empty.
  const float* prefill(const std::vector<int>& tokens, int pos0 = 0);

  // Forgets every cached position (the next forward must be at position 0).
  void reset() { decoder_.reset(); }

  const ModelConfig& config() const { return decoder_.config(); }
  int max_len() const { return decoder_.max_len(); }
  int filled() const { return decoder_.filled(0); }  // positions 0 .. filled()-1 are cached
  // The tokens at positions 0 .. filled()-1.
  std::vector<int> history() const {
    return std::vector<int>(history_.begin(), history_.begin() + filled());
  }
  Decoder& decoder() { return decoder_; }

 private:
  Decoder decoder_;
  std::vector<int> history_;  // [max_len] the token fed at each position
};

// A Generator with its own copy of host weights on `backend` (for `kiln sample`).
class LoadedGenerator {
 public:
  LoadedGenerator(Backend& backend, const ModelConfig& config, const float* host_params,
                  int max_len, WeightFormat format = WeightFormat::compute);
  Generator& generator() { return generator_; }
  const DeviceWeights& weights() const { return weights_; }

 private:
  DeviceWeights weights_;
  Generator generator_;
};

// What generate() did and how fast.
struct GenerationStats {
  int prompt_tokens = 0;     // the prompt's length
  int reused_tokens = 0;     // of which were already in the cache (reuse_cache)
  int generated_tokens = 0;  // passed to on_token
  double prefill_s = 0;      // feeding the prompt
  double decode_s = 0;       // sampling and feeding the generated tokens (not on_token)
  bool stopped_by_callback = false;  // on_token returned false
  bool reached_max_len = false;      // the sequence filled the generator's max_len
  double prefill_tokens_per_s() const {
    return prefill_s > 0 ? (prompt_tokens - reused_tokens) / prefill_s : 0;
  }
  double decode_tokens_per_s() const { return decode_s > 0 ? generated_tokens / decode_s : 0; }
};

// How generate() picks tokens (transformers' names): temperature 0 = greedy; top_k
// (0 = off) then top_p (1 = off) narrow the distribution; repetition_penalty
// (1 = off) rescales the logits of every id already in the sequence (prompt and
// generated). reuse_cache: keep what the generator's cache holds up to the longest
// common prefix with `prompt` and prefill only the rest (multi-turn chat).
struct SamplingParams {
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;
  float repetition_penalty = 1.0f;
  uint64_t seed = 42;
  bool reuse_cache = false;
};

// Resets `generator` (unless reuse_cache), feeds `prompt` at positions 0.., then
// samples up to `steps` tokens from Rng(seed), streaming each to on_token as soon
// as it is chosen. Stops when on_token returns false (that token is not fed), after
// `steps` tokens, or when the sequence reaches max_len (prompt + generated <=
// max_len). Every other generated token is fed, so afterwards the cache holds the
// whole sequence and decoding could go on. Deterministic for a seed. Throws
// InputError for an empty or too long prompt, steps < 0, or bad sampling settings
// (before any work is done).
GenerationStats generate(Generator& generator, const std::vector<int>& prompt, int steps,
                         const SamplingParams& params,
                         const std::function<bool(int token)>& on_token);
// The same with temperature and top_p only.
GenerationStats generate(Generator& generator, const std::vector<int>& prompt, int steps,
                         float temperature, float top_p, uint64_t seed,
                         const std::function<bool(int token)>& on_token);

// Many prompts as one batch: each prompt is prefilled into its own cache slot of
// `decoder` (max_batch >= prompts.size()), then every step decodes one token for
// all sequences still going (M = B GEMMs). Sequence b samples from Rng(seed + b);
// on_token(b, token) streams its tokens and returns false to end that sequence
// (the token is not fed). A sequence also ends after `steps` tokens or at max_len.
// Returns the generated tokens of each sequence; stats sum over all of them.
std::vector<std::vector<int>> generate_batch(
    Decoder& decoder, const std::vector<std::vector<int>>& prompts, int steps,
    const SamplingParams& params, const std::function<bool(int seq, int token)>& on_token,
    GenerationStats* stats = nullptr);

}  // namespace kiln
