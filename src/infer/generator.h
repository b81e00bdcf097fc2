// Incremental (KV-cache) decoding of a Llama-family model on the CPU, one token
// at a time, in fp32.
//
// The math is exactly that of src/backend/backend.h (and of the fp64 oracle in
// tests/reference/reference_model.h), specialised to T = 1 with the keys and
// values of earlier positions kept in a cache instead of recomputed:
//   x   = embed[token]                                             // [C]
//   per layer l:
//     xn  = rmsnorm(x) * attn_norm        rstd = 1 / sqrt(mean(x^2) + norm_eps)
//     qkv = Wqkv xn                       // [H*D + 2*Hkv*D], q | k | v
//     RoPE (rotate-half) on q and k at position pos
//     k_cache[l, pos], v_cache[l, pos] = k, v                     // [Hkv, D] each
//     att_h = softmax_{t <= pos}(q_h . k_t / sqrt(D)) v_t,  kv head of h = h / (H / Hkv)
//     x  += Wo att                        // Wo [C, H*D]
//     xn2 = rmsnorm(x) * ffn_norm
//     h13 = W13 xn2                       // [2F], gate (W1) | up (W3)
//     x  += W2 (silu(h1) * h3)            // W2 [C, F]
//   logits = Wcls (rmsnorm(x) * norm)     // [V]; Wcls = embedding when tied
//
// Every buffer is sized once in the constructor; forward() allocates nothing.
// Each output element of a matrix-vector product is summed by one thread in a
// fixed order, so the logits do not depend on the number of OpenMP threads.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace kiln {

class Generator {
 public:
  // `params` is the flat fp32 buffer in ParamLayout(config)'s layout; it is read,
  // never copied, and must outlive the Generator. max_len (the longest sequence,
  // prompt included) must be in [1, config.max_seq_len]. Throws InputError.
  Generator(const ModelConfig& config, const float* params, int max_len);

  // Feeds `token` at position `pos` (0-based) and returns the logits [V] for the
  // token at pos + 1. The pointer stays valid until the next forward().
  // Positions 0 .. pos-1 must have been fed since the last reset() (pos may go back
  // to rewind: the cache beyond pos is then overwritten as decoding goes on).
  // Throws InputError for a token outside [0, V) or a position outside
  // [0, min(max_len, fed positions)].
  const float* forward(int token, int pos);

  // Feeds tokens at positions pos0, pos0 + 1, ... and returns the logits after the
  // last one. `tokens` must not be empty.
  const float* prefill(const std::vector<int>& tokens, int pos0 = 0);

  // Forgets every cached position (the next forward must be at position 0).
  void reset() { filled_ = 0; }

  const ModelConfig& config() const { return config_; }
  int max_len() const { return max_len_; }
  int filled() const { return filled_; }  // positions 0 .. filled()-1 are in the cache

 private:
  void attention(int layer, int pos);  // att_ (=) from q in qkv_ and the cache

  ModelConfig config_;
  ParamLayout layout_;
  const float* params_;
  int max_len_;
  int filled_ = 0;

  std::vector<float> rope_cos_, rope_sin_;  // [max_len, D/2]
  std::vector<float> key_cache_;            // [L, max_len, Hkv, D]
  std::vector<float> value_cache_;          // [L, max_len, Hkv, D]
  std::vector<float> x_;                    // [C] residual stream
  std::vector<float> xn_;                   // [C] normalised input of a projection
  std::vector<float> qkv_;                  // [H*D + 2*Hkv*D]
  std::vector<float> att_;                  // [H*D]
  std::vector<float> scores_;               // [H, max_len]
  std::vector<float> h13_;                  // [2F]
  std::vector<float> gated_;                // [F]
  std::vector<float> logits_;               // [V]
};

// Products of at least this many multiply-adds use all threads (default 2^20);
// tests lower it to exercise the parallel paths on tiny models.
void set_generator_parallel_macs(int64_t macs);

// What generate() did and how fast.
struct GenerationStats {
  int prompt_tokens = 0;     // fed before the first sample
  int generated_tokens = 0;  // passed to on_token
  double prefill_s = 0;      // feeding the prompt
  double decode_s = 0;       // sampling and feeding the generated tokens (not on_token)
  bool stopped_by_callback = false;  // on_token returned false
  bool reached_max_len = false;      // the sequence filled the generator's max_len
  double prefill_tokens_per_s() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0; }
  double decode_tokens_per_s() const { return decode_s > 0 ? generated_tokens / decode_s : 0; }
};

// Resets `generator`, feeds `prompt` at positions 0.., then samples up to `steps`
// tokens with sample_next(temperature, top_p) from Rng(seed), streaming each to
// on_token as soon as it is chosen. Stops when on_token returns false (that token
// is not fed), after `steps` tokens, or when the sequence reaches max_len (prompt +
// generated <= max_len). Every other generated token is fed, so afterwards the
// cache holds the whole sequence and decoding could go on. Deterministic for a seed.
// Throws InputError for an empty or too long prompt, steps < 0, or bad sampling
// settings (before any work is done).
GenerationStats generate(Generator& generator, const std::vector<int>& prompt, int steps,
                         float temperature, float top_p, uint64_t seed,
                         const std::function<bool(int token)>& on_token);

}  // namespace kiln
