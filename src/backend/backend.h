// The op interface. The model step (src/train/model_step.cpp) is written once
// against this class; a backend implements ops, nothing more.
//
// Conventions
// - Every pointer is memory of this backend (host memory for the CPU, device
//   memory for CUDA). Dimensions are explicit; tensors are dense row-major.
// - Each op says whether it overwrites its output (=) or accumulates into it (+=).
//   Weight gradients always accumulate, so micro-batches add up in the flat grad buffer.
// - Activations between ops are fp32. GEMM operands have the backend's compute
//   dtype (fp32 or bf16, fp32 accumulation); ops that feed a GEMM take an
//   `out_dtype` and write it directly, so nothing converts twice.
// - The packed attention input is qkv [B, T, (H + 2*Hkv) * D]: per token the H query
//   heads, then the Hkv key heads, then the Hkv value heads, D values each (the
//   output of one GEMM against the stacked q_proj | k_proj | v_proj weight).
//   Query head h attends with key/value head h / (H / Hkv).
// - Nothing here synchronises with the host except download(); reductions such as
//   the grad norm write to backend memory so a GPU never waits inside a step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtype.h"
#include "model/config.h"

namespace kiln {

struct AdamWHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // for this segment (0 for norms)
  int64_t step = 1;           // 1-based, for bias correction
  float max_norm = 0.0f;      // clip_grad_norm_ threshold; 0 = no clipping
};

// What a backend can do and where it runs: the trainer, `kiln bench` and
// `kiln sample` ask this instead of looking at the concrete backend type.
struct BackendCaps {
  std::string device;       // the hardware: CPU model name or GPU name
  std::string kernels;      // the kernel variant in use: CPU ISA ("avx512"), GPU "sm_90"
  bool host_memory = true;  // buffers are host memory (the CPU backend)
  bool bf16_gemm = false;   // bf16 matmul operands are supported
  bool int8_linear = false; // linear_int8 is implemented
  int threads = 1;          // host threads the backend's kernels use
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string name() const = 0;     // e.g. "cpu avx512 amx-bf16, 2 threads"
  virtual DType compute_dtype() const = 0;  // dtype of GEMM operands
  virtual BackendCaps caps() const = 0;

  // --- memory ---------------------------------------------------------------
  virtual void* alloc(size_t bytes) = 0;  // 64-byte aligned, uninitialised
  virtual void release(void* ptr) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* dst, size_t bytes) = 0;
  virtual void synchronize() {}

  // --- GEMM -----------------------------------------------------------------
  // C[M, N] (= or += when accumulate) op(A) . op(B); op(A) is [M, K], op(B) is [K, N].
  // A is stored [M, K] row-major, or [K, M] when trans_a; B is [K, N], or [N, K] when
  // trans_b. A and B share `dtype`; C is fp32; accumulation is fp32.
  // A linear layer y = x W^T with W [out, in]: matmul(y, x, W, dt, N, out, in, false, true, false).
  virtual void matmul(float* C, const void* A, const void* B, DType dtype, int64_t M, int64_t N,
                      int64_t K, bool trans_a, bool trans_b, bool accumulate) = 0;

  // A linear layer with int8 weights (W8A8): y[M, N] (= or +=) x[M, K] W^T, W [N, K]
  // as backend/int8_weights.h stores it (wq bytes [N, Kp], ws scales [N, G], backend
  // memory), x fp32, quantized per row and group at run time. Where the backend has
  // no int8 kernels (caps().int8_linear false) it throws InputError.
  virtual void linear_int8(float* y, const float* x, const uint8_t* wq, const float* ws,
                           int64_t M, int64_t N, int64_t K, bool accumulate);

  // dst[n] (=) src converted to dst_dtype (a copy when fp32).
  virtual void cast(void* dst, DType dst_dtype, const float* src, int64_t n) = 0;
  // out[n] (=) a + b (out may alias a or b).
  virtual void add(float* out, const float* a, const float* b, int64_t n) = 0;

  // --- embedding --------------------------------------------------------------
  // out[N, C] (=) table[tokens[i], :]
  virtual void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N,
                                 int C) = 0;
  // dtable[tokens[i], :] (+=) dout[i, :]
  virtual void embedding_backward(float* dtable, const int32_t* tokens, const float* dout,
                                  int64_t N, int C) = 0;

  // --- RMSNorm ------------------------------------------------------------------
  // out[N, C] (=, in out_dtype) x * rstd * weight, rstd[N] (=) 1 / sqrt(mean(x^2) + eps)
  virtual void rmsnorm_forward(void* out, DType out_dtype, float* rstd, const float* x,
                               const float* weight, int64_t N, int C, float eps) = 0;
  // dx[N, C] (+=) and dweight[C] (+=) from dout[N, C]; x, weight, rstd as in forward.
  virtual void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                                const float* weight, const float* rstd, int64_t N, int C) = 0;

  // --- linear-layer bias (Qwen2's q/k/v projections) ------------------------------
  // y[N, C] (+=) bias[C] on every row
  virtual void bias_forward(float* y, const float* bias, int64_t N, int C) = 0;
  // dbias[C] (+=) sum over the N rows of dy[N, C]
  virtual void bias_backward(float* dbias, const float* dy, int64_t N, int C) = 0;

  // --- per-head RMSNorm of q and k (Qwen3's q_norm / k_norm) -----------------------
  // On qkv rows [N, (H + 2*Hkv) * D] as in attention. Each of the H query heads and
  // Hkv key heads of a row is normed over its own D values x:
  //   out_head (=) x * r * w,  r = 1 / sqrt(mean(x^2) + eps),  rstd[N, H + Hkv] (=) r
  // with w = q_weight[D] for query heads and k_weight[D] for key heads; the value
  // heads are copied unchanged. out and qkv must not alias.
  virtual void head_rmsnorm_forward(float* out, float* rstd, const float* qkv,
                                    const float* q_weight, const float* k_weight, int64_t N, int H,
                                    int Hkv, int D, float eps) = 0;
  // In place on the q and k heads of dqkv [N, (H + 2*Hkv) * D]: dL/d out (=) dL/d x;
  // the value heads are left as they are. dq_weight[D], dk_weight[D] (+=).
  // qkv is the forward's input (before the norm), rstd its output.
  virtual void head_rmsnorm_backward(float* dqkv, float* dq_weight, float* dk_weight,
                                     const float* qkv, const float* q_weight, const float* k_weight,
                                     const float* rstd, int64_t N, int H, int Hkv, int D) = 0;

  // --- RoPE (rotate-half, as Hugging Face Llama) ----------------------------------
  // In place on the q and k heads of qkv [B, T, (H + 2*Hkv) * D]; token t has position
  // pos0 + t. For i < D/2, angle = pos * rope.inv_freq(i, D) (theta^(-2i/D), or its
  // llama3 rescaling: model/config.h):
  //   x[i]       <- x[i] cos - x[i + D/2] sin
  //   x[i + D/2] <- x[i + D/2] cos + x[i] sin
  virtual void rope_forward(float* qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                            int pos0) = 0;
  // The transpose (inverse rotation) applied in place to dq and dk inside dqkv.
  virtual void rope_backward(float* dqkv, int B, int T, int H, int Hkv, int D,
                             const RopeParams& rope, int pos0) = 0;

  // --- decoding with a KV cache ------------------------------------------------------
  // Sequence b < B owns cache slot b of k_cache / v_cache [B, max_len, Hkv, D] (fp32).
  // pos[B] is backend memory (int32, so a captured decode step reads it on the
  // device): token t of sequence b sits at position pos[b] + t, and every
  // pos[b] + T <= max_len (the caller checks; the CPU backend checks again).
  //
  // RoPE as rope_forward, at those positions.
  virtual void rope_forward_at(float* qkv, int B, int T, int H, int Hkv, int D,
                               const RopeParams& rope, const int32_t* pos, int max_len) = 0;
  // Appends, then attends:
  //   k_cache[b, pos[b] + t] (=) k of token (b, t), v_cache likewise (from qkv, after RoPE);
  //   out[B, T, H*D] (=) for token (b, t) at p = pos[b] + t and query head h:
  //     softmax_{s <= p}(q . k_cache[b, s, h / (H/Hkv)] / sqrt(D)) v_cache[b, s, ...]
  // So T > 1 is a causal prefill chunk on top of what slot b already holds.
  virtual void attention_decode(float* out, float* k_cache, float* v_cache, const float* qkv,
                                int B, int T, int H, int Hkv, int D, const int32_t* pos,
                                int max_len) = 0;

  // --- causal GQA attention ----------------------------------------------------
  // out[B, T, H*D] (=) softmax(q k^T / sqrt(D) + causal mask) v, per head;
  // lse[B, H, T] (=) the log-sum-exp of each score row (kept for backward).
  // Memory is O(T) per thread: no T x T matrix is ever stored.
  virtual void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H,
                                 int Hkv, int D) = 0;
  // dqkv[B, T, (H + 2*Hkv) * D] (=) from dout[B, T, H*D], recomputing probabilities from lse.
  virtual void attention_backward(float* dqkv, const float* dout, const float* qkv,
                                  const float* out, const float* lse, int B, int T, int H, int Hkv,
                                  int D) = 0;

  // --- SwiGLU -------------------------------------------------------------------
  // h13[N, 2F] holds [h1 | h3] per row (gate_proj and up_proj outputs);
  // out[N, F] (=, in out_dtype) silu(h1) * h3
  virtual void swiglu_forward(void* out, DType out_dtype, const float* h13, int64_t N, int F) = 0;
  // dh13[N, 2F] (=) from dout[N, F]
  virtual void swiglu_backward(float* dh13, const float* dout, const float* h13, int64_t N,
                               int F) = 0;

  // --- classifier + cross-entropy, fused and chunked -----------------------------
  // x[N, C] and W[V, C] in `dtype`. For each row i: logits = x_i W^T,
  // losses[i] (=) logsumexp(logits) - logits[targets[i]]; targets[i] < 0 means
  // "no target" (losses[i] = 0, no gradient). When dx is not null, also
  //   dx[N, C] (=) dlogits W,   dW[V, C] (+=) dlogits^T x,
  // with dlogits_i = (softmax(logits_i) - onehot(targets[i])) * dloss.
  // At most a chunk of rows' logits exists at once (never N x V).
  virtual void classifier_forward_backward(float* losses, float* dx, float* dW, const void* x,
                                           const void* W, DType dtype, const int32_t* targets,
                                           int64_t N, int C, int V, float dloss) = 0;

  // --- optimizer ------------------------------------------------------------------
  // out[0] (=) sqrt(sum of g[i]^2), computed in double, over n elements.
  virtual void global_norm(float* out, const float* g, int64_t n) = 0;
  // torch.optim.AdamW on n elements, with the clip of clip_grad_norm_ folded in:
  //   scale = (max_norm > 0 && norm > max_norm) ? max_norm / (norm + 1e-6) : 1, g = grad * scale
  //   p -= lr * weight_decay * p
  //   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
  //   p -= lr * (m / (1 - beta1^step)) / (sqrt(v / (1 - beta2^step)) + eps)
  // `grad_norm` points at backend memory written by global_norm. When
  // params_compute is not null it (=) the new p in compute_dtype (the GEMM copy).
  virtual void adamw(float* params, void* params_compute, DType compute_dtype, const float* grads,
                     float* m, float* v, int64_t n, const AdamWHyper& hyper,
                     const float* grad_norm) = 0;
};

}  // namespace kiln
