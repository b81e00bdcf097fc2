// The CPU's int8 linear layers (format: backend/int8_weights.h): x [M, K] fp32 is
// quantized per row and group into a workspace, then each body sums the int8
// products of a group exactly in int32 and adds s sx (group sum) to an fp32 sum.
// Bodies, dispatched at run time: AVX-512 with VPDPBUSD (AVX512_VNNI) or with
// 16-bit VPMADDWD, AVX2 (VPMADDWD), scalar. Weight rows are split statically over
// the threads in tiles, so a y element never depends on the thread count.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kiln::cpu {

// x quantized: q [M, Kp] int8 (0 past K), scale [M, G], and for VPDPBUSD (which
// multiplies unsigned weight bytes q_w = v_w + 128 by signed x bytes) the
// correction corr [M, G, 16] = 128 * (sum of x bytes 4i .. 4i+3 of the group),
// the amount by which each of its 16 int32 lanes exceeds the signed product.
struct Int8Rows {
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  const int32_t* corr = nullptr;
};

size_t int8_workspace_bytes(int64_t M, int64_t K);
Int8Rows quantize_int8_rows(void* workspace, const float* x, int64_t M, int64_t K);

// y [M, N] (= or +=) x [M, K] W^T with W int8 (wq, ws as in int8_weights.h).
// `workspace` holds int8_workspace_bytes(M, K) bytes, 64-byte aligned.
void int8_linear(float* y, const float* x, const uint8_t* wq, const float* ws, int64_t M,
                 int64_t N, int64_t K, bool accumulate, void* workspace);

// The bodies, from quantized rows (same contract).
void int8_body_scalar(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M,
                      int64_t N, int64_t K, bool accumulate);
void int8_body_avx2(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M,
                    int64_t N, int64_t K, bool accumulate);
void int8_body_avx512(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M,
                      int64_t N, int64_t K, bool accumulate, bool vnni);

}  // namespace kiln::cpu
