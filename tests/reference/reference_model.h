// The plain fp64 whole-model oracle: forward, loss and a hand-written backward of
// the Llama-family model, in loops, with every activation kept. It is written
// independently of the per-op oracle (reference_ops.h) so the two check each other,
// and its backward is itself checked by central finite differences
// (tests/test_reference_model.cpp).
//
// The math, exactly the semantics of src/backend/backend.h:
//   x = embed[token]                                          // [N, C], N = B*T
//   per layer:
//     xn  = rmsnorm(x) * attn_norm    rstd = 1 / sqrt(mean(x^2) + norm_eps)
//     qkv = xn Wqkv^T (+ bqkv)        Wqkv = q_proj | k_proj | v_proj  [H*D + 2*Hkv*D, C]
//                                     bqkv = q_proj.bias | k_proj.bias | v_proj.bias (qkv_bias)
//     qk_norm: each q and k head's D values <- rmsnorm(head) * q_norm / k_norm [D], eps norm_eps
//     RoPE (rotate-half) on q and k, position t = 0..T-1 within each sequence
//     att = causal softmax(q k^T / sqrt(D)) v, query head h uses kv head h / (H/Hkv)
//     x  += att Wo^T
//     xn2 = rmsnorm(x) * ffn_norm
//     h13 = xn2 W13^T                 W13 = gate_proj (W1) | up_proj (W3)  [2F, C]
//     x  += (silu(h1) * h3) W2^T
//   xf = rmsnorm(x) * model.norm.weight;  logits = xf Wcls^T
//   Wcls = embed_tokens when tie_embeddings, else lm_head
//   loss = mean over tokens with target >= 0 of logsumexp(logits) - logits[target]
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"
#include "model/param_layout.h"

namespace kiln::ref {

// A model in fp64: `params` is one flat buffer in exactly ParamLayout's layout
// (the same offsets as Kiln's fp32 master weights and grads).
struct RefModel {
  ModelConfig config;
  ParamLayout layout;
  std::vector<double> params;  // [layout.total()]
};

// A RefModel for `config` with all parameters zero (fill `params` afterwards).
RefModel make_zero_ref_model(const ModelConfig& config);

// Mean cross-entropy over the tokens whose target is >= 0 (target -1 = ignore);
// tokens, targets: [B*T], row b*T + t is position t of sequence b.
// When `grads` is not null it (=) d loss / d params in the flat layout (resized to
// layout.total()); a tied embedding gets both its classifier and embedding parts.
// With no valid target at all the loss is 0 and every gradient is 0.
// Throws InputError on sizes that do not match or ids outside [0, V).
double ref_loss_and_grads(const RefModel& model, const std::vector<int32_t>& tokens,
                          const std::vector<int32_t>& targets, int B, int T,
                          std::vector<double>* grads);

// logits [B*T, V] (=) of the forward pass above.
std::vector<double> ref_logits(const RefModel& model, const std::vector<int32_t>& tokens, int B,
                               int T);

}  // namespace kiln::ref
