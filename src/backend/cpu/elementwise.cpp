// CpuBackend's elementwise ops: add, embedding, RMSNorm, RoPE, SwiGLU, global_norm,
// AdamW. This file checks arguments, owns the grow-only scratch and the RoPE cos/sin
// tables, computes AdamW's per-step scalars, and dispatches to the kernel table of
// the active ISA (elementwise_kernels.h), chosen again on every call so tests and
// KILN_ISA can switch variants at run time.
#include <cmath>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/elementwise_kernels.h"
#include "core/error.h"

namespace kiln {
namespace {

const cpu::ElementwiseKernels& kernels() {
  switch (active_isa()) {
    case Isa::avx512:
      return cpu::avx512::elementwise_kernels();
    case Isa::avx2:
      return cpu::avx2::elementwise_kernels();
    case Isa::scalar:
      break;
  }
  return cpu::scalar::elementwise_kernels();
}

// Token ids index the table directly; the backend does not know the vocabulary size
// (loaders check ids < vocab), but a negative id is caught here.
void check_tokens(const char* op, const int32_t* tokens, int64_t N) {
  for (int64_t i = 0; i < N; ++i)
    if (tokens[i] < 0)
      fail_input(op, "token " + std::to_string(i) + " has a negative id", ">= 0",
                 std::to_string(tokens[i]));
}

void check_positive(const char* op, const char* what, int64_t value) {
  if (value <= 0)
    fail_input(op, std::string(what) + " must be positive", "> 0", std::to_string(value));
}

// Grow-only scratch per calling thread: sized by the first (largest) step, then reused,
// so nothing is allocated inside the training loop.
template <typename T>
T* scratch(std::vector<T>& buffer, int64_t count) {
  if (int64_t(buffer.size()) < count) buffer.resize(size_t(count));
  return buffer.data();
}

// RoPE cos/sin tables [positions, D/2] for one (D, rope), in fp32 from angles in
// double: angle(p, i) = p * rope.inv_freq(i, D) (theta^(-2i/D), or its llama3 rescaling). Grown (never shrunk, never recomputed for
// positions it already holds) when a call needs more positions; a few (D, theta)
// pairs are kept so models with differing head sizes do not thrash.
struct RopeTable {
  int D = 0;
  RopeParams rope{0.0};
  int positions = 0;
  std::vector<float> cos, sin;
};

const RopeTable& rope_table(int D, const RopeParams& rope, int positions_needed) {
  constexpr int kTables = 4;
  thread_local RopeTable tables[kTables];
  thread_local int next_victim = 0;
  RopeTable* table = nullptr;
  for (RopeTable& t : tables)
    if (t.D == D && t.rope.same_as(rope)) table = &t;
  if (!table) {
    table = &tables[next_victim];
    next_victim = (next_victim + 1) % kTables;
    *table = RopeTable{D, rope, 0, {}, {}};
  }
  if (table->positions >= positions_needed) return *table;
  // Grow to a power of two (at least 64) so token-by-token decoding regrows rarely.
  int grown = 64;
  while (grown < positions_needed) grown *= 2;
  const int half = D / 2, old = table->positions;
  table->cos.resize(size_t(grown) * half);
  table->sin.resize(size_t(grown) * half);
  float* cos_out = table->cos.data();
  float* sin_out = table->sin.data();
#pragma omp parallel for schedule(static) if (int64_t(grown - old) * half > 4096)
  for (int p = old; p < grown; ++p) {
    for (int i = 0; i < half; ++i) {
      const double angle = double(p) * rope.inv_freq(i, D);
      cos_out[int64_t(p) * half + i] = float(std::cos(angle));
      sin_out[int64_t(p) * half + i] = float(std::sin(angle));
    }
  }
  table->positions = grown;
  return *table;
}

constexpr int64_t kMaxRopePositions = int64_t(1) << 26;

// seq_pos (host memory, [B]) not null: sequence b starts at seq_pos[b] instead of pos0,
// and positions_end bounds every seq_pos[b] + T (the caller checked it).
void rope(const char* op, float* qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
          int pos0, bool inverse, const int32_t* seq_pos = nullptr, int positions_end = 0) {
  const double theta = rope.theta;
  check_positive(op, "B", B);
  check_positive(op, "T", T);
  check_positive(op, "n_heads", H);
  check_positive(op, "n_kv_heads", Hkv);
  check_positive(op, "head_dim", D);
  if (D % 2 != 0) fail_input(op, "head_dim must be even", "even", std::to_string(D));
  if (H % Hkv != 0)
    fail_input(op, "n_kv_heads must divide n_heads", "a divisor of " + std::to_string(H),
               std::to_string(Hkv));
  if (pos0 < 0) fail_input(op, "start position must not be negative", ">= 0", std::to_string(pos0));
  if (!(theta > 0)) fail_input(op, "rope_theta must be positive", "> 0", std::to_string(theta));
  if (int64_t(pos0) + T > kMaxRopePositions)
    fail_input(op, "position beyond the RoPE table limit",
               "<= " + std::to_string(kMaxRopePositions), std::to_string(int64_t(pos0) + T));
  const RopeTable& table = rope_table(D, rope, seq_pos ? positions_end : pos0 + T);
  const int64_t row_stride = int64_t(H + 2 * Hkv) * D;
  // The q heads and then the k heads are the first H + Hkv heads of every token row.
  kernels().rope(qkv, int64_t(B) * T, T, row_stride, H + Hkv, D, table.cos.data(), table.sin.data(),
                 pos0, seq_pos, inverse);
}

}  // namespace

void CpuBackend::add(float* out, const float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  kernels().add(out, a, b, n);
}

void CpuBackend::embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N,
                                   int C) {
  if (N <= 0) return;
  check_positive("embedding_forward", "C", C);
  check_tokens("embedding_forward", tokens, N);
  kernels().embedding_forward(out, tokens, table, N, C);
}

void CpuBackend::embedding_backward(float* dtable, const int32_t* tokens, const float* dout,
                                    int64_t N, int C) {
  if (N <= 0) return;
  check_positive("embedding_backward", "C", C);
  check_tokens("embedding_backward", tokens, N);
  kernels().embedding_backward(dtable, tokens, dout, N, C);
}

void CpuBackend::rmsnorm_forward(void* out, DType out_dtype, float* rstd, const float* x,
                                 const float* weight, int64_t N, int C, float eps) {
  if (N <= 0) return;
  check_positive("rmsnorm_forward", "C", C);
  kernels().rmsnorm_forward(out, out_dtype == DType::bf16, rstd, x, weight, N, C, eps);
}

void CpuBackend::rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                                  const float* weight, const float* rstd, int64_t N, int C) {
  if (N <= 0) return;
  check_positive("rmsnorm_backward", "C", C);
  thread_local std::vector<float> partials;  // [ceil(N / rows per block), C]
  const int64_t n_blocks = (N + cpu::kRmsnormRowsPerBlock - 1) / cpu::kRmsnormRowsPerBlock;
  kernels().rmsnorm_backward(dx, dweight, scratch(partials, n_blocks * C), dout, x, weight, rstd, N,
                             C);
}

void CpuBackend::rope_forward(float* qkv, int B, int T, int H, int Hkv, int D,
                              const RopeParams& rope_params, int pos0) {
  rope("rope_forward", qkv, B, T, H, Hkv, D, rope_params, pos0, false);
}

void CpuBackend::rope_forward_at(float* qkv, int B, int T, int H, int Hkv, int D,
                                 const RopeParams& rope_params, const int32_t* pos, int max_len) {
  check_positive("rope_forward_at", "B", B);
  check_positive("rope_forward_at", "T", T);
  check_positive("rope_forward_at", "max_len", max_len);
  if (int64_t(max_len) > kMaxRopePositions)
    fail_input("rope_forward_at", "max_len beyond the RoPE table limit",
               "<= " + std::to_string(kMaxRopePositions), std::to_string(max_len));
  for (int b = 0; b < B; ++b)
    if (pos[b] < 0 || int64_t(pos[b]) + T > max_len)
      fail_input("rope_forward_at", "position of sequence " + std::to_string(b) + " out of range",
                 "0.." + std::to_string(max_len - T), std::to_string(pos[b]));
  rope("rope_forward_at", qkv, B, T, H, Hkv, D, rope_params, 0, false, pos, max_len);
}

void CpuBackend::rope_backward(float* dqkv, int B, int T, int H, int Hkv, int D,
                               const RopeParams& rope_params, int pos0) {
  rope("rope_backward", dqkv, B, T, H, Hkv, D, rope_params, pos0, true);
}

void CpuBackend::swiglu_forward(void* out, DType out_dtype, const float* h13, int64_t N, int F) {
  if (N <= 0) return;
  check_positive("swiglu_forward", "F", F);
  kernels().swiglu_forward(out, out_dtype == DType::bf16, h13, N, F);
}

void CpuBackend::swiglu_backward(float* dh13, const float* dout, const float* h13, int64_t N,
                                 int F) {
  if (N <= 0) return;
  check_positive("swiglu_backward", "F", F);
  kernels().swiglu_backward(dh13, dout, h13, N, F);
}

// sqrt(sum g^2): fixed chunks summed in parallel (double), partials added in order.
void CpuBackend::global_norm(float* out, const float* g, int64_t n) {
  if (n <= 0) {
    out[0] = 0.0f;
    return;
  }
  thread_local std::vector<double> partials;
  const int64_t n_chunks = (n + cpu::kNormChunk - 1) / cpu::kNormChunk;
  double* p = scratch(partials, n_chunks);
  kernels().sum_squares_chunks(p, g, n);
  double sum = 0.0;
  for (int64_t i = 0; i < n_chunks; ++i) sum += p[i];
  out[0] = float(std::sqrt(sum));
}

void CpuBackend::adamw(float* params, void* params_compute, DType compute_dtype, const float* grads,
                       float* m, float* v, int64_t n, const AdamWHyper& hyper,
                       const float* grad_norm) {
  if (n <= 0) return;
  if (hyper.step < 1)
    fail_input("adamw", "step must be 1-based", ">= 1", std::to_string(hyper.step));
  // clip_grad_norm_: coef = max_norm / (norm + 1e-6), evaluated in fp32 like torch's
  // tensor arithmetic; applied only when the norm exceeds max_norm (backend.h).
  float grad_scale = 1.0f;
  if (hyper.max_norm > 0) {
    if (!grad_norm) fail_runtime("adamw", "clipping needs the grad norm buffer");
    const float norm = grad_norm[0];
    if (norm > hyper.max_norm) grad_scale = hyper.max_norm / (norm + float(1e-6));
  }
  // The scalars torch forms in Python (double), rounded to fp32 for the kernel.
  const double lr = hyper.lr, beta1 = hyper.beta1, beta2 = hyper.beta2;
  const double step = double(hyper.step);
  cpu::AdamWScalars s;
  s.grad_scale = grad_scale;
  s.decay_factor = float(1.0 - lr * double(hyper.weight_decay));
  s.one_minus_beta1 = float(1.0 - beta1);
  s.beta2 = hyper.beta2;
  s.one_minus_beta2 = float(1.0 - beta2);
  s.step_size = float(lr / (1.0 - std::pow(beta1, step)));
  s.bias_correction2_sqrt = float(std::sqrt(1.0 - std::pow(beta2, step)));
  s.eps = hyper.eps;
  kernels().adamw(params, params_compute, compute_dtype == DType::bf16, grads, m, v, n, s);
}

}  // namespace kiln
