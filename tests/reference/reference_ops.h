// The plain fp64 oracle, one function per op. Loops only: no SIMD, no blocking,
// no cleverness. Semantics are exactly those documented in src/backend/backend.h;
// every fast kernel is tested against these. Buffers are row-major std::vector<double>.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace kiln::ref {

using Vec = std::vector<double>;

// C[M,N] (= or +=) op(A) op(B), storage as Backend::matmul.
void matmul(Vec& C, const Vec& A, const Vec& B, int64_t M, int64_t N, int64_t K, bool trans_a,
            bool trans_b, bool accumulate);

void embedding_forward(Vec& out, const std::vector<int32_t>& tokens, const Vec& table, int C);
void embedding_backward(Vec& dtable, const std::vector<int32_t>& tokens, const Vec& dout, int C);

void rmsnorm_forward(Vec& out, Vec& rstd, const Vec& x, const Vec& weight, int64_t N, int C,
                     double eps);
void rmsnorm_backward(Vec& dx, Vec& dweight, const Vec& dout, const Vec& x, const Vec& weight,
                      const Vec& rstd, int64_t N, int C);  // both +=

// y[N, C] (+=) bias[C] per row; dbias[C] (+=) column sums of dy.
void bias_forward(Vec& y, const Vec& bias, int64_t N, int C);
void bias_backward(Vec& dbias, const Vec& dy, int64_t N, int C);

// Per-head RMSNorm of the q and k heads of qkv rows [N, (H + 2 Hkv) D]: out (=, value
// heads copied), rstd [N, H + Hkv] (=). Backward: dqkv's q and k heads (=) d(input),
// value heads untouched; dq_weight, dk_weight [D] (+=).
void head_rmsnorm_forward(Vec& out, Vec& rstd, const Vec& qkv, const Vec& q_weight,
                          const Vec& k_weight, int64_t N, int H, int Hkv, int D, double eps);
void head_rmsnorm_backward(Vec& dqkv, Vec& dq_weight, Vec& dk_weight, const Vec& qkv,
                           const Vec& q_weight, const Vec& k_weight, const Vec& rstd, int64_t N,
                           int H, int Hkv, int D);

// RoPE with the frequencies of `rope` (theta, optional llama3 scaling), computed
// here from the recipe, not by RopeParams::inv_freq.
void rope_forward(Vec& qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope, int pos0);
void rope_backward(Vec& dqkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                   int pos0);
double rope_frequency(const RopeParams& rope, int i, int D);

// Materialises the full score matrix (it is the oracle; memory does not matter here).
void attention_forward(Vec& out, Vec& lse, const Vec& qkv, int B, int T, int H, int Hkv, int D);
// attention_decode of backend.h: the new keys and values of qkv [B, T, QKV] are written
// to k_cache / v_cache [B, max_len, Hkv, D] at positions pos[b] + t; out [B, T, H*D] (=)
// for token (b, t) the causal softmax attention over cache positions 0..pos[b] + t.
void attention_decode(Vec& out, Vec& k_cache, Vec& v_cache, const Vec& qkv, int B, int T, int H,
                      int Hkv, int D, const std::vector<int32_t>& pos, int max_len);
void attention_backward(Vec& dqkv, const Vec& dout, const Vec& qkv, int B, int T, int H, int Hkv,
                        int D);  // dqkv (=)

void swiglu_forward(Vec& out, const Vec& h13, int64_t N, int F);
void swiglu_backward(Vec& dh13, const Vec& dout, const Vec& h13, int64_t N, int F);

// losses (=), and when dx is not null: dx (=), dW (+=). targets < 0: no target.
void classifier_forward_backward(Vec& losses, Vec* dx, Vec* dW, const Vec& x, const Vec& W,
                                 const std::vector<int32_t>& targets, int64_t N, int C, int V,
                                 double dloss);

double global_norm(const Vec& g);
struct AdamWHyperRef {
  double lr, beta1, beta2, eps, weight_decay, max_norm;
  int64_t step;
};
void adamw(Vec& params, const Vec& grads, Vec& m, Vec& v, const AdamWHyperRef& hyper,
           double grad_norm);

}  // namespace kiln::ref
