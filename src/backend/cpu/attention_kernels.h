// The per-task kernels behind CpuBackend::attention_forward / attention_backward
// (attention.cpp), one set per ISA. The block algorithm is written once in
// attention_flash.inc over a small SIMD traits type and compiled three times:
// attention_scalar.cpp (x86-64 baseline), attention_avx2.cpp, attention_avx512.cpp.
//
// This header holds only plain structs, constants and declarations: nothing here
// is an inline function or a template, so no code compiled with AVX-512 flags can
// be picked by the linker for a baseline caller (the ODR hazard of ISA files).
//
// Every buffer a kernel touches is given to it: the caller (attention.cpp) owns the
// grow-only per-thread scratch and carves it into the pieces below.
#pragma once
#include <cstdint>

namespace kiln::attention_detail {

// Query rows and key rows per block. Scores exist one block pair at a time
// ([kBlockQ, kBlockK] floats), so memory per thread is O(T * D), never O(T^2).
constexpr int kBlockQ = 64;
constexpr int kBlockK = 64;
// Row lengths of packed buffers are padded to a multiple of this (the widest vector, 16 floats),
// so every ISA's tiles read whole vectors; padding is kept at zero.
constexpr int kPad = 16;

// One query head of one sequence. Forward: online softmax over key blocks.
struct ForwardHeadArgs {
  const float* q;  // [T, D] at stride ld_qkv (query head h of sequence b inside qkv)
  const float* k;  // [T, D] at stride ld_qkv (its key head)
  const float* v;  // [T, D] at stride ld_qkv (its value head)
  int64_t ld_qkv;  // (H + 2*Hkv) * D
  float* out;      // [T, D] at stride ld_out (=)
  int64_t ld_out;  // H * D
  float* lse;      // [T] (=) natural-log log-sum-exp of each scaled score row
  int T, D;
  int Dp;  // D rounded up to kPad
  int Tp;  // T rounded up to kBlockK
  // scratch
  float* kt;  // [Tp / kBlockK][D][kBlockK]  K^T by key block, for the S = Q K^T tiles
  float* vp;  // [Tp, Dp] V, rows padded
  float* qs;  // [kBlockQ, D]  query block times scale * log2(e)
  float* s;   // [kBlockQ, kBlockK] scores, then probabilities
  float* o;   // [kBlockQ, Dp] unnormalised output accumulator
  float* m;   // [kBlockQ] running max (log2 units)
  float* l;   // [kBlockQ] running sum of exp2(s - m)
};

// One key/value head of one sequence and the `group` query heads that share it.
// The task owns dq of those query heads and dk, dv of the kv head, so tasks never
// write the same rows and the result does not depend on the thread schedule.
struct BackwardGroupArgs {
  const float* q;  // [group][T, D] at stride ld_qkv; head i of the group at q + i*D
  const float* k;  // [T, D] at stride ld_qkv
  const float* v;  // [T, D] at stride ld_qkv
  int64_t ld_qkv;
  const float* out;   // [group][T, D] at stride ld_out (forward output)
  const float* dout;  // [group][T, D] at stride ld_out
  int64_t ld_out;
  const float* lse;  // [group][T]; head i of the group at lse + i*T
  float* dq;         // [group][T, D] at stride ld_qkv (=)
  float* dk;         // [T, D] at stride ld_qkv (=)
  float* dv;         // [T, D] at stride ld_qkv (=)
  int group;         // H / Hkv
  int T, D, Dp, Tp;
  // scratch
  float* kt;     // [Tp / kBlockK][D][kBlockK]  K^T by key block (for S = Q K^T)
  float* vt;     // [Tp / kBlockK][D][kBlockK]  V^T by key block (for dP = dO V^T)
  float* kp;     // [Tp, Dp] K rows padded (for dQ += dS K)
  float* qs;     // [Tp, Dp] Q * scale * log2(e) (for S and for dK += dS^T Q)
  float* dop;    // [Tp, Dp] dO rows padded
  float* delta;  // [Tp]  rowsum(dO * O)
  float* lse2;   // [Tp]  lse * log2(e)
  float* dqacc;  // [Tp, Dp]
  float* dkacc;  // [Tp, Dp]
  float* dvacc;  // [Tp, Dp]
  float* p;      // [kBlockQ, kBlockK] probabilities of one block pair
  float* ds;     // [kBlockQ, kBlockK] dP, then dS
};

// Decoding: the `group` query heads that share one kv head, one token each, against
// n cached key/value rows.
struct DecodeGroupArgs {
  const float* q;  // [group][D] consecutive (the token's query heads of this kv head)
  const float* k;  // [n, D] at stride ld (the cache of this kv head)
  const float* v;  // [n, D] at stride ld
  int64_t ld;      // Hkv * D
  float* out;      // [group][D] consecutive (=)
  int group, n, D;
  // scratch
  float* s;  // [group][n rounded up to kPad] scores, then probabilities
  float* l;  // [group] sums of the probabilities
};

void forward_head_scalar(const ForwardHeadArgs& args);
void forward_head_avx2(const ForwardHeadArgs& args);
void forward_head_avx512(const ForwardHeadArgs& args);
void backward_group_scalar(const BackwardGroupArgs& args);
void backward_group_avx2(const BackwardGroupArgs& args);
void backward_group_avx512(const BackwardGroupArgs& args);
void decode_group_scalar(const DecodeGroupArgs& args);
void decode_group_avx2(const DecodeGroupArgs& args);
void decode_group_avx512(const DecodeGroupArgs& args);

}  // namespace kiln::attention_detail
