// Causal GQA attention on the CPU, flash-attention style (semantics in backend.h).
//
// forward  (=): one task per (sequence b, query head h); inside, blocks of kBlockQ
//               query rows run an online softmax over blocks of kBlockK keys.
// backward (=): one task per (sequence b, kv head); the task walks the H/Hkv query
//               heads that share the kv head, so it alone writes their dq rows and
//               the kv head's dk, dv rows. No two threads touch the same output and
//               every task sums in a fixed order: results are bitwise reproducible,
//               whatever the thread count or schedule.
// Each task is single-threaded and runs on the calling thread's grow-only scratch,
// O(T * D) floats (the packed K, V, Q, dO of one head and a few block buffers),
// never O(T^2). The block kernels are in attention_flash.inc, one build per ISA.
#include <omp.h>

#include <cstdlib>
#include <string>

#include "backend/cpu/attention_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

using namespace attention_detail;

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// A thread's attention scratch: grows to the largest request seen, never shrinks,
// so after the first step of a shape nothing is allocated.
class ThreadScratch {
 public:
  ~ThreadScratch() { std::free(data_); }
  float* get(int64_t floats) {
    if (floats > capacity_) {
      std::free(data_);
      capacity_ = 0;
      data_ =
          static_cast<float*>(std::aligned_alloc(64, size_t(round_up(floats, 16)) * sizeof(float)));
      if (data_) capacity_ = floats;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  int64_t capacity_ = 0;
};
thread_local ThreadScratch t_scratch;

// Hands out consecutive 64-byte aligned pieces of one buffer; with base == nullptr
// it only counts, so sizing and carving share one description of the layout.
class Carver {
 public:
  explicit Carver(float* base) : base_(base) {}
  float* take(int64_t floats) {
    float* piece = base_ ? base_ + used_ : nullptr;
    used_ += round_up(floats, 16);
    return piece;
  }
  int64_t used() const { return used_; }

 private:
  float* base_;
  int64_t used_ = 0;
};

void carve_forward(ForwardHeadArgs& a, Carver& c) {
  a.kt = c.take(int64_t(a.D) * a.Tp);
  a.vp = c.take(int64_t(a.Tp) * a.Dp);
  a.qs = c.take(int64_t(kBlockQ) * a.D);
  a.s = c.take(int64_t(kBlockQ) * kBlockK);
  a.o = c.take(int64_t(kBlockQ) * a.Dp);
  a.m = c.take(kBlockQ);
  a.l = c.take(kBlockQ);
}

void carve_backward(BackwardGroupArgs& a, Carver& c) {
  const int64_t rows = int64_t(a.Tp) * a.Dp;
  a.kt = c.take(int64_t(a.D) * a.Tp);
  a.vt = c.take(int64_t(a.D) * a.Tp);
  a.kp = c.take(rows);
  a.qs = c.take(rows);
  a.dop = c.take(rows);
  a.delta = c.take(a.Tp);
  a.lse2 = c.take(a.Tp);
  a.dqacc = c.take(rows);
  a.dkacc = c.take(rows);
  a.dvacc = c.take(rows);
  a.p = c.take(int64_t(kBlockQ) * kBlockK);
  a.ds = c.take(int64_t(kBlockQ) * kBlockK);
}

void check_shape(const char* op, int B, int T, int H, int Hkv, int D) {
  const std::string where = std::string("attention ") + op;
  if (B < 0 || T < 0)
    fail_input(where, "negative batch or sequence length", ">= 0",
               std::to_string(B) + " x " + std::to_string(T));
  if (H <= 0 || Hkv <= 0 || D <= 0)
    fail_input(
        where, "heads and head_dim must be positive", "> 0",
        "H=" + std::to_string(H) + " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D));
  if (H % Hkv != 0)
    fail_input(where, "n_heads must be a multiple of n_kv_heads", "H % Hkv == 0",
               "H=" + std::to_string(H) + " Hkv=" + std::to_string(Hkv));
}

using ForwardFn = void (*)(const ForwardHeadArgs&);
using BackwardFn = void (*)(const BackwardGroupArgs&);

ForwardFn forward_kernel() {
  switch (active_isa()) {
    case Isa::avx512:
      return forward_head_avx512;
    case Isa::avx2:
      return forward_head_avx2;
    case Isa::scalar:
      break;
  }
  return forward_head_scalar;
}

BackwardFn backward_kernel() {
  switch (active_isa()) {
    case Isa::avx512:
      return backward_group_avx512;
    case Isa::avx2:
      return backward_group_avx2;
    case Isa::scalar:
      break;
  }
  return backward_group_scalar;
}

[[noreturn]] void fail_scratch(const char* op, int64_t floats) {
  fail_runtime(std::string("attention ") + op,
               "out of memory allocating " + std::to_string(floats * 4) + " bytes of scratch");
}

}  // namespace

// out[B, T, H*D] (=), lse[B, H, T] (=) from qkv[B, T, (H + 2*Hkv)*D].
void CpuBackend::attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H,
                                   int Hkv, int D) {
  check_shape("forward", B, T, H, Hkv, D);
  if (B == 0 || T == 0) return;
  const int group = H / Hkv;
  const int64_t ld_qkv = int64_t(H + 2 * Hkv) * D, ld_out = int64_t(H) * D;
  ForwardHeadArgs shape{};
  shape.ld_qkv = ld_qkv;
  shape.ld_out = ld_out;
  shape.T = T;
  shape.D = D;
  shape.Dp = int(round_up(D, kPad));
  shape.Tp = int(round_up(T, kBlockK));
  Carver sizing(nullptr);
  carve_forward(shape, sizing);
  const int64_t scratch_floats = sizing.used();
  const ForwardFn kernel = forward_kernel();
  const int64_t tasks = int64_t(B) * H;
  bool out_of_memory = false;

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    float* scratch = t_scratch.get(scratch_floats);
    if (!scratch) {
#pragma omp atomic write
      out_of_memory = true;
      continue;
    }
    const int64_t b = task / H;
    const int h = int(task % H), kv = h / group;
    ForwardHeadArgs a = shape;
    Carver carver(scratch);
    carve_forward(a, carver);
    const float* seq = qkv + b * T * ld_qkv;
    a.q = seq + int64_t(h) * D;
    a.k = seq + int64_t(H + kv) * D;
    a.v = seq + int64_t(H + Hkv + kv) * D;
    a.out = out + b * T * ld_out + int64_t(h) * D;
    a.lse = lse + (b * H + h) * T;
    kernel(a);
  }
  if (out_of_memory) fail_scratch("forward", scratch_floats);
}

// dqkv[B, T, (H + 2*Hkv)*D] (=) from dout[B, T, H*D], qkv, out and lse of the forward.
void CpuBackend::attention_backward(float* dqkv, const float* dout, const float* qkv,
                                    const float* out, const float* lse, int B, int T, int H,
                                    int Hkv, int D) {
  check_shape("backward", B, T, H, Hkv, D);
  if (B == 0 || T == 0) return;
  const int group = H / Hkv;
  const int64_t ld_qkv = int64_t(H + 2 * Hkv) * D, ld_out = int64_t(H) * D;
  BackwardGroupArgs shape{};
  shape.ld_qkv = ld_qkv;
  shape.ld_out = ld_out;
  shape.group = group;
  shape.T = T;
  shape.D = D;
  shape.Dp = int(round_up(D, kPad));
  shape.Tp = int(round_up(T, kBlockK));
  Carver sizing(nullptr);
  carve_backward(shape, sizing);
  const int64_t scratch_floats = sizing.used();
  const BackwardFn kernel = backward_kernel();
  const int64_t tasks = int64_t(B) * Hkv;
  bool out_of_memory = false;

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t task = 0; task < tasks; ++task) {
    float* scratch = t_scratch.get(scratch_floats);
    if (!scratch) {
#pragma omp atomic write
      out_of_memory = true;
      continue;
    }
    const int64_t b = task / Hkv;
    const int kv = int(task % Hkv), h0 = kv * group;  // query heads h0 .. h0 + group - 1
    BackwardGroupArgs a = shape;
    Carver carver(scratch);
    carve_backward(a, carver);
    const int64_t seq = b * T * ld_qkv, seq_out = b * T * ld_out;
    a.q = qkv + seq + int64_t(h0) * D;
    a.k = qkv + seq + int64_t(H + kv) * D;
    a.v = qkv + seq + int64_t(H + Hkv + kv) * D;
    a.out = out + seq_out + int64_t(h0) * D;
    a.dout = dout + seq_out + int64_t(h0) * D;
    a.lse = lse + (b * H + h0) * T;
    a.dq = dqkv + seq + int64_t(h0) * D;
    a.dk = dqkv + seq + int64_t(H + kv) * D;
    a.dv = dqkv + seq + int64_t(H + Hkv + kv) * D;
    kernel(a);
  }
  if (out_of_memory) fail_scratch("backward", scratch_floats);
}

}  // namespace kiln
