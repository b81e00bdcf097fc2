// The elementwise kernel family (add, embedding, RMSNorm, RoPE, SwiGLU, grad norm,
// AdamW) as a table of plain function pointers, one table per ISA variant.
//
// The bodies are written once (elementwise_kernels.inc) and compiled three times:
// elementwise_scalar.cpp (x86-64 baseline), elementwise_avx2.cpp and
// elementwise_avx512.cpp, each inside its own namespace. elementwise.cpp picks the
// table for kiln::active_isa() on every call and owns the scratch buffers and the
// RoPE cos/sin cache, so the ISA files never instantiate a std template (an inline
// function compiled with AVX-512 flags must never be what a baseline caller links to).
//
// This header is included by the ISA files too: it declares only POD types,
// constants and non-inline functions.
#pragma once
#include <cstdint>

namespace kiln::cpu {

// Row blocking of RMSNorm backward's dweight reduction: per block of this many rows
// one partial row [C] is summed, then the partials are added in block order. It is
// a constant (not a thread count) so dweight is bitwise the same for any thread count.
constexpr int64_t kRmsnormRowsPerBlock = 16;
// global_norm sums fixed chunks of this many elements (partials added in order), so
// the norm too is independent of the thread count.
constexpr int64_t kNormChunk = 1 << 16;

// The per-step scalars of AdamW, computed once on the host in double (as torch
// computes them in Python) and rounded to float.
struct AdamWScalars {
  float grad_scale;       // clip factor: max_norm / (norm + 1e-6), or 1
  float decay_factor;     // 1 - lr * weight_decay
  float one_minus_beta1;  // the lerp weight of m towards g
  float beta2, one_minus_beta2;
  float step_size;              // lr / (1 - beta1^step)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^step)
  float eps;
};

struct ElementwiseKernels {
  // out[n] (=) a + b (out may alias a or b).
  void (*add)(float* out, const float* a, const float* b, int64_t n);
  // out[N, C] (=) table[tokens[i], :]
  void (*embedding_forward)(float* out, const int32_t* tokens, const float* table, int64_t N,
                            int C);
  // dtable[tokens[i], :] (+=) dout[i, :]; parallel over column slices, so every element
  // is summed in token order whatever the thread count (repeated tokens are safe).
  void (*embedding_backward)(float* dtable, const int32_t* tokens, const float* dout, int64_t N,
                             int C);
  // out[N, C] (=, fp32, or bf16 bits when out_bf16) x * rstd * weight;  rstd[N] (=)
  void (*rmsnorm_forward)(void* out, bool out_bf16, float* rstd, const float* x,
                          const float* weight, int64_t N, int C, float eps);
  // dx[N, C] (+=), dweight[C] (+=); partials is scratch of
  // ceil(N / kRmsnormRowsPerBlock) * C floats.
  void (*rmsnorm_backward)(float* dx, float* dweight, float* partials, const float* dout,
                           const float* x, const float* weight, const float* rstd, int64_t N,
                           int C);
  // Rotates, in place, the first `heads` heads (D floats each) of `tokens` rows that
  // are `row_stride` floats apart. Row r is token r % T, at position pos0 + r % T.
  // cos_table / sin_table are [positions, D/2]: entry [p, i] = cos / sin(p theta^(-2i/D)).
  // inverse = true applies R^T (the backward).
  // Row r (token r % T of sequence r / T) is at position pos0 + r % T, or at
  // seq_pos[r / T] + r % T when seq_pos is not null.
  void (*rope)(float* qkv, int64_t tokens, int T, int64_t row_stride, int heads, int D,
               const float* cos_table, const float* sin_table, int pos0, const int32_t* seq_pos,
               bool inverse);
  // out[N, F] (=, fp32 or bf16 bits) silu(h1) * h3, h13 [N, 2F] = [h1 | h3] per row
  void (*swiglu_forward)(void* out, bool out_bf16, const float* h13, int64_t N, int F);
  // dh13[N, 2F] (=) from dout[N, F]
  void (*swiglu_backward)(float* dh13, const float* dout, const float* h13, int64_t N, int F);
  // partials[ceil(n / kNormChunk)] (=) sum of g^2 over each chunk, in double.
  void (*sum_squares_chunks)(double* partials, const float* g, int64_t n);
  // One AdamW step on n elements (params, m, v updated in place). compute_out is null,
  // or (=) the new params as fp32, or as bf16 bits when compute_bf16.
  void (*adamw)(float* params, void* compute_out, bool compute_bf16, const float* grads, float* m,
                float* v, int64_t n, const AdamWScalars& s);
};

namespace scalar {
const ElementwiseKernels& elementwise_kernels();
}
namespace avx2 {
const ElementwiseKernels& elementwise_kernels();
}
namespace avx512 {
const ElementwiseKernels& elementwise_kernels();
}

}  // namespace kiln::cpu
