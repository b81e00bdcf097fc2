// Attention over a KV cache on the CPU (semantics in backend.h, attention_decode):
// the decode step (T = 1 per sequence) and prefill chunks (T > 1) of sampling.
//
// First the T new keys and values of every sequence are written to its cache slot;
// then one task per (sequence b, kv head, token t) computes, for each query head of
// that kv head, the scores against cache positions 0..p (p = pos[b] + t) into the
// thread's scratch, softmaxes them (max subtracted, sum in fp32) and accumulates
// the values in that order (decode_group in attention_flash.inc, per ISA). Each output row is written by one task in a fixed order, so the result
// does not depend on the thread count. Small problems stay on the calling thread:
// a parallel region is a barrier, and decoding a small model is a chain of them.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/attention_kernels.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

// Multiply-adds below which a call runs on one thread.
constexpr int64_t kParallelMacs = int64_t(1) << 16;

void check_positive(const char* what, int64_t value) {
  if (value <= 0)
    fail_input("attention_decode", std::string(what) + " must be positive", "> 0",
               std::to_string(value));
}

}  // namespace

void CpuBackend::attention_decode(float* out, float* k_cache, float* v_cache, const float* qkv,
                                  int B, int T, int H, int Hkv, int D, const int32_t* pos,
                                  int max_len) {
  check_positive("B", B);
  check_positive("T", T);
  check_positive("n_heads", H);
  check_positive("n_kv_heads", Hkv);
  check_positive("head_dim", D);
  check_positive("max_len", max_len);
  if (H % Hkv != 0)
    fail_input("attention_decode", "n_kv_heads must divide n_heads",
               "a divisor of " + std::to_string(H), std::to_string(Hkv));
  int64_t macs = 0;
  for (int b = 0; b < B; ++b) {
    if (pos[b] < 0 || int64_t(pos[b]) + T > max_len)
      fail_input("attention_decode", "position of sequence " + std::to_string(b) + " out of range",
                 "0.." + std::to_string(max_len - T), std::to_string(pos[b]));
    macs += int64_t(T) * (pos[b] + T) * H * D * 2;
  }
  const int64_t row = int64_t(H + 2 * Hkv) * D;  // qkv row
  const int64_t kv = int64_t(Hkv) * D;            // cache row
  const int64_t slot = int64_t(max_len) * kv;     // one sequence's cache
  const int group = H / Hkv;
  const bool parallel = macs >= kParallelMacs;

  // Append the new keys and values.
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      const float* src = qkv + (int64_t(b) * T + t) * row;
      const int64_t at = b * slot + int64_t(pos[b] + t) * kv;
      std::memcpy(k_cache + at, src + int64_t(H) * D, sizeof(float) * kv);
      std::memcpy(v_cache + at, src + int64_t(H + Hkv) * D, sizeof(float) * kv);
    }

  // One task per (sequence, kv head, token): its `group` query heads read the
  // cache rows once (attention_flash.inc, decode_group, at the active ISA).
  void (*kernel)(const attention_detail::DecodeGroupArgs&) = attention_detail::decode_group_scalar;
  if (active_isa() == Isa::avx512)
    kernel = attention_detail::decode_group_avx512;
  else if (active_isa() == Isa::avx2)
    kernel = attention_detail::decode_group_avx2;
  const int64_t padded = (int64_t(max_len) + attention_detail::kPad - 1) / attention_detail::kPad *
                         attention_detail::kPad;
  const int64_t tasks = int64_t(B) * Hkv * T;
#pragma omp parallel if (parallel)
  {
    thread_local std::vector<float> scratch;  // grow-only: scores [group][padded], sums [group]
    const size_t need = size_t(group) * size_t(padded + 1);
    if (scratch.size() < need) scratch.resize(need);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int b = int(task / (int64_t(Hkv) * T));
      const int kvh = int(task / T % Hkv);
      const int t = int(task % T);
      attention_detail::DecodeGroupArgs args;
      args.q = qkv + (int64_t(b) * T + t) * row + int64_t(kvh) * group * D;
      args.k = k_cache + b * slot + int64_t(kvh) * D;
      args.v = v_cache + b * slot + int64_t(kvh) * D;
      args.ld = kv;
      args.out = out + (int64_t(b) * T + t) * int64_t(H) * D + int64_t(kvh) * group * D;
      args.group = group;
      args.n = pos[b] + t + 1;
      args.D = D;
      args.s = scratch.data();
      args.l = scratch.data() + size_t(group) * size_t(padded);
      kernel(args);
    }
  }
}

}  // namespace kiln
