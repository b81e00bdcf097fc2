// The decoding oracle: incremental (KV-cache) decoding of a plain Llama model on
// the CPU, one token at a time, in fp32, in plain loops, written apart from the
// Backend decoder (src/nn/decoder.h) that it checks. (This was Kiln's sampler
// before sampling went through the Backend.)
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
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace kiln::ref {

class RefGenerator {
 public:
  // `params` is the flat fp32 buffer in ParamLayout(config)'s layout; it is read,
  // never copied, and must outlive the Generator. max_len (the longest sequence,
  // prompt included) must be in [1, config.max_seq_len]. Throws InputError.
  RefGenerator(const ModelConfig& config, const float* params, int max_len);

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

}  // namespace kiln::ref
