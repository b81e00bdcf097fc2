// Kernels of the causal GQA flash attention on the tensor cores: bf16 operands, fp32
// accumulation (mma.sync m16n8k16, sm_80 and later), head_dim D = 64 or 128. Launched
// by attention_mma.cu; also compiled for the CPU by tests/test_cuda_kernels_emulated.cpp.
// The math is that of attention_simt_kernels.cuh (log2-unit scores, Q2 = Q * scale *
// log2 e); only the products run in bf16: Q2 K^T, P V, dO V^T, P^T dO, dS^T Q2, dS K.
//
// Tiles of 64 rows; a block is 4 warps, each owning 16 of the block's rows.
//   forward: block = (sequence, query head, 64 queries). Per key tile of 64:
//            S = Q2 K^T (16 x 64 per warp), causal mask, online softmax on the
//            accumulator fragments, O += P V with P re-packed as the A operand
//            straight from the S accumulators (no trip through shared memory).
//   dK, dV:  block = (sequence, kv head, 64 keys). Per query tile of 64 of each head
//            of the group, in 16-query steps: S^T = K Q2^T, dP^T = V dO^T,
//            P^T = exp2(S^T - lse2), dS^T = P^T o (dP^T - Delta),
//            dV += P^T dO, dK += dS^T Q2 (A operands again from the accumulators).
//   dQ:      block = (sequence, query head, 64 queries). Per key tile, in 16-key
//            steps: S, dP, dS as above, dQ += dS K.
// No atomics, fixed summation order: bitwise reproducible. O(T D) shared memory at
// most per block, never T x T.
//
// Fragment layouts of mma.m16n8k16 (lane = 4 g + t, g = lane / 4, t = lane % 4), each
// 32-bit register holding two bf16 with the lower column in the low half:
//   A 16x16 row-major:  a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
//   B 16x8  (k x n):    b0 (k 2t..2t+1, n g)    b1 (k 2t+8..2t+9, n g)
//   C 16x8  fp32:       c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
// So an A operand is read from a tile stored [m][k] and a B operand from a tile
// stored [n][k] (B transposed): both with k contiguous, each register one 32-bit
// load. Shared tiles are padded by 8 bf16 per row, which puts the 32 lanes of a
// fragment load on 32 different banks.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::mma_attention {
namespace {

using namespace kiln::cuda;
using bf16_t = uint16_t;

constexpr int kTile = 64;  // rows of every tile: queries or keys
constexpr int kWarps = 4;  // 16 rows each
constexpr int kThreads = kWarps * kWarp;
constexpr int kPad = 8;                 // bf16 of padding per shared row
constexpr int kStrideT = kTile + kPad;  // row stride of a transposed tile [D][64 + 8]
constexpr float kLog2e = 1.44269504088896340736f;
constexpr float kLn2 = 0.69314718055994530942f;

template <int D>
__host__ __device__ constexpr int stride_of() {
  return D + kPad;  // row stride of a row-major tile [64][D + 8]
}

template <int D>
__host__ __device__ constexpr int forward_smem_bytes() {
  return (2 * kTile * stride_of<D>() + D * kStrideT) * 2;  // Q, K row-major; V transposed
}
template <int D>
__host__ __device__ constexpr int dkdv_smem_bytes() {
  return (4 * kTile * stride_of<D>() + 2 * D * kStrideT) * 2 + 2 * kTile * 4;
}
template <int D>
__host__ __device__ constexpr int dq_smem_bytes() {
  return (4 * kTile * stride_of<D>() + D * kStrideT) * 2;
}

// --- fragments ---------------------------------------------------------------------------
__device__ __forceinline__ uint32_t load_pair(const bf16_t* p) {
  return *reinterpret_cast<const uint32_t*>(p);
}

// A fragment: rows r0 .. r0+15, columns k0 .. k0+15 of a [rows][stride] tile.
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const bf16_t* tile, int stride, int r0,
                                       int k0, int g, int t) {
  const bf16_t* p = tile + (r0 + g) * stride + k0 + 2 * t;
  a[0] = load_pair(p);
  a[1] = load_pair(p + 8 * stride);
  a[2] = load_pair(p + 8);
  a[3] = load_pair(p + 8 * stride + 8);
}

// B fragment for columns n0 .. n0+7, k0 .. k0+15, from B^T stored [n][stride].
__device__ __forceinline__ void load_b(uint32_t& b0, uint32_t& b1, const bf16_t* tile, int stride,
                                       int n0, int k0, int g, int t) {
  const bf16_t* p = tile + (n0 + g) * stride + k0 + 2 * t;
  b0 = load_pair(p);
  b1 = load_pair(p + 8);
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
  return *reinterpret_cast<const uint32_t*>(&v);
}

// The A operand (16 x 16) made of two C accumulators (16 x 8 each) side by side.
__device__ __forceinline__ void accumulators_to_a(uint32_t (&a)[4], const float (&left)[4],
                                                  const float (&right)[4]) {
  a[0] = pack2(left[0], left[1]);
  a[1] = pack2(left[2], left[3]);
  a[2] = pack2(right[0], right[1]);
  a[3] = pack2(right[2], right[3]);
}

// c (+=) a b, 16x8x16, bf16 in, fp32 accumulate.
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
#ifdef KILN_CUDA_EMULATION
  kiln_emulated_mma_m16n8k16(c, a, b0, b1);  // tests/cuda_emulation.h
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// --- tile loads: global fp32 -> shared bf16 ------------------------------------------------
// tile[r][c] (=) bf16(src[(row0 + r) * ld + c] * factor), r < 64, c < D; rows >= T zero.
// Rows of D floats are read as float4 (the caller guarantees 16-byte alignment).
template <int D>
__device__ void load_rows(bf16_t* tile, const float* src, int64_t ld, int row0, int T,
                          float factor) {
  constexpr int kQuads = D / 4;
  for (int e = threadIdx.x; e < kTile * kQuads; e += kThreads) {
    const int r = e / kQuads, c = (e - r * kQuads) * 4;
    float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (row0 + r < T) v = *reinterpret_cast<const float4*>(src + int64_t(row0 + r) * ld + c);
    uint2 packed;
    packed.x = pack2(v.x * factor, v.y * factor);
    packed.y = pack2(v.z * factor, v.w * factor);
    *reinterpret_cast<uint2*>(tile + r * stride_of<D>() + c) = packed;
  }
}

// tileT[c][r] (=) bf16(src[(row0 + r) * ld + c] * factor): the transpose, two rows per
// item so that every shared store is one bf16 pair.
template <int D>
__device__ void load_rows_transposed(bf16_t* tileT, const float* src, int64_t ld, int row0, int T,
                                     float factor) {
  constexpr int kQuads = D / 4;
  for (int e = threadIdx.x; e < (kTile / 2) * kQuads; e += kThreads) {
    const int rp = e / kQuads, c = (e - rp * kQuads) * 4;
    const int r = 2 * rp;
    float4 v0 = make_float4(0.0f, 0.0f, 0.0f, 0.0f), v1 = v0;
    if (row0 + r < T) v0 = *reinterpret_cast<const float4*>(src + int64_t(row0 + r) * ld + c);
    if (row0 + r + 1 < T)
      v1 = *reinterpret_cast<const float4*>(src + int64_t(row0 + r + 1) * ld + c);
    uint32_t* dst = reinterpret_cast<uint32_t*>(tileT + c * kStrideT + r);
    constexpr int kWordStride = kStrideT / 2;
    dst[0] = pack2(v0.x * factor, v1.x * factor);
    dst[kWordStride] = pack2(v0.y * factor, v1.y * factor);
    dst[2 * kWordStride] = pack2(v0.z * factor, v1.z * factor);
    dst[3 * kWordStride] = pack2(v0.w * factor, v1.w * factor);
  }
}

// --- forward ------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(kThreads)
    mma_forward_kernel(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                       int n_qblocks) {
  KILN_DYNAMIC_SHARED(unsigned char, smem_raw);
  constexpr int S = stride_of<D>();
  bf16_t* Qs = reinterpret_cast<bf16_t*>(smem_raw);  // [64][S] Q2
  bf16_t* Ks = Qs + kTile * S;                       // [64][S]
  bf16_t* Vt = Ks + kTile * S;                       // [D][72] V transposed
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int g = lane / 4, t = lane % 4;

  const int64_t heads = int64_t(B) * H;  // late query blocks (most keys) first
  const int qb = n_qblocks - 1 - int(blockIdx.x / heads);
  const int64_t bh = blockIdx.x % heads;
  const int b = int(bh / H), h = int(bh % H), kv = h / (H / Hkv);
  const int64_t ld = int64_t(H + 2 * Hkv) * D;
  const float* seq = qkv + int64_t(b) * T * ld;
  const float* k_src = seq + int64_t(H + kv) * D;
  const float* v_src = seq + int64_t(H + Hkv + kv) * D;
  const int i0 = qb * kTile;
  load_rows<D>(Qs, seq + int64_t(h) * D, ld, i0, T, kLog2e / sqrtf(float(D)));
  __syncthreads();

  const int r0 = warp * 16;
  const int row_a = i0 + r0 + g, row_b = row_a + 8;  // the two rows this thread holds
  uint32_t qa[D / 16][4];
  KILN_UNROLL
  for (int kk = 0; kk < D / 16; ++kk) load_a(qa[kk], Qs, S, r0, 16 * kk, g, t);
  float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
  float o[D / 8][4];
  KILN_UNROLL
  for (int nd = 0; nd < D / 8; ++nd) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;

  const int last = min(T, i0 + kTile) - 1;  // keys past the block's last query are never seen
  for (int j0 = 0; j0 <= last; j0 += kTile) {
    __syncthreads();  // the previous K, V tiles are consumed
    load_rows<D>(Ks, k_src, ld, j0, T, 1.0f);
    load_rows_transposed<D>(Vt, v_src, ld, j0, T, 1.0f);
    __syncthreads();

    // S2[16, 64] (=) Q2 K^T for this warp's rows.
    float s[8][4];
    KILN_UNROLL
    for (int nt = 0; nt < 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
    KILN_UNROLL
    for (int kk = 0; kk < D / 16; ++kk) KILN_UNROLL
    for (int nt = 0; nt < 8; ++nt) {
      uint32_t b0, b1;
      load_b(b0, b1, Ks, S, 8 * nt, 16 * kk, g, t);
      mma(s[nt], qa[kk], b0, b1);
    }
    // Causal mask (key j > query i) and keys past T: only the diagonal and last tiles.
    if (j0 + kTile - 1 > i0 + r0 || j0 + kTile > T) {
      KILN_UNROLL
      for (int nt = 0; nt < 8; ++nt) KILN_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + 8 * nt + 2 * t + (e & 1);
        const int i = e < 2 ? row_a : row_b;
        if (j > i || j >= T) s[nt][e] = -INFINITY;
      }
    }
    // Online softmax per row: the max over the quad (4 lanes share a row), rescale.
    float mx_a = -INFINITY, mx_b = -INFINITY;
    KILN_UNROLL
    for (int nt = 0; nt < 8; ++nt) {
      mx_a = fmaxf(mx_a, fmaxf(s[nt][0], s[nt][1]));
      mx_b = fmaxf(mx_b, fmaxf(s[nt][2], s[nt][3]));
    }
    mx_a = fmaxf(mx_a, __shfl_xor_sync(kFullMask, mx_a, 1));
    mx_a = fmaxf(mx_a, __shfl_xor_sync(kFullMask, mx_a, 2));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(kFullMask, mx_b, 1));
    mx_b = fmaxf(mx_b, __shfl_xor_sync(kFullMask, mx_b, 2));
    const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
    // A row with nothing live yet keeps max -inf: use 0 as the shift so no inf - inf.
    const float shift_a = mn_a == -INFINITY ? 0.0f : mn_a;
    const float shift_b = mn_b == -INFINITY ? 0.0f : mn_b;
    const float alpha_a = exp2f(m_a - shift_a), alpha_b = exp2f(m_b - shift_b);
    m_a = mn_a;
    m_b = mn_b;
    float sum_a = 0.0f, sum_b = 0.0f;
    KILN_UNROLL
    for (int nt = 0; nt < 8; ++nt) {
      s[nt][0] = exp2f(s[nt][0] - shift_a);
      s[nt][1] = exp2f(s[nt][1] - shift_a);
      s[nt][2] = exp2f(s[nt][2] - shift_b);
      s[nt][3] = exp2f(s[nt][3] - shift_b);
      sum_a += s[nt][0] + s[nt][1];
      sum_b += s[nt][2] + s[nt][3];
    }
    l_a = l_a * alpha_a + sum_a;  // per-thread partial row sums, quad-reduced at the end
    l_b = l_b * alpha_b + sum_b;
    KILN_UNROLL
    for (int nd = 0; nd < D / 8; ++nd) {
      o[nd][0] *= alpha_a;
      o[nd][1] *= alpha_a;
      o[nd][2] *= alpha_b;
      o[nd][3] *= alpha_b;
    }
    // O[16, D] (+=) P[16, 64] V[64, D], 16 keys per step.
    KILN_UNROLL
    for (int kk = 0; kk < kTile / 16; ++kk) {
      uint32_t pa[4];
      accumulators_to_a(pa, s[2 * kk], s[2 * kk + 1]);
      KILN_UNROLL
      for (int nd = 0; nd < D / 8; ++nd) {
        uint32_t b0, b1;
        load_b(b0, b1, Vt, kStrideT, 8 * nd, 16 * kk, g, t);
        mma(o[nd], pa, b0, b1);
      }
    }
  }
  l_a += __shfl_xor_sync(kFullMask, l_a, 1);
  l_a += __shfl_xor_sync(kFullMask, l_a, 2);
  l_b += __shfl_xor_sync(kFullMask, l_b, 1);
  l_b += __shfl_xor_sync(kFullMask, l_b, 2);
  const int64_t ld_out = int64_t(H) * D;
  const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
  KILN_UNROLL
  for (int nd = 0; nd < D / 8; ++nd) {
    const int d = 8 * nd + 2 * t;
    if (row_a < T)
      *reinterpret_cast<float2*>(out + (int64_t(b) * T + row_a) * ld_out + int64_t(h) * D + d) =
          make_float2(o[nd][0] * inv_a, o[nd][1] * inv_a);
    if (row_b < T)
      *reinterpret_cast<float2*>(out + (int64_t(b) * T + row_b) * ld_out + int64_t(h) * D + d) =
          make_float2(o[nd][2] * inv_b, o[nd][3] * inv_b);
  }
  if (t == 0) {
    float* lse_row = lse + (int64_t(b) * H + h) * T;
    if (row_a < T) lse_row[row_a] = (m_a + log2f(l_a)) * kLn2;
    if (row_b < T) lse_row[row_b] = (m_b + log2f(l_b)) * kLn2;
  }
}

// --- dK, dV -------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(kThreads)
    mma_dkdv_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                    const float* delta, int B, int T, int H, int Hkv) {
  KILN_DYNAMIC_SHARED(unsigned char, smem_raw);
  constexpr int S = stride_of<D>();
  bf16_t* Ks = reinterpret_cast<bf16_t*>(smem_raw);             // [64][S] this block's keys
  bf16_t* Vs = Ks + kTile * S;                                  // [64][S]
  bf16_t* Qs = Vs + kTile * S;                                  // [64][S] Q2 of the query tile
  bf16_t* dOs = Qs + kTile * S;                                 // [64][S]
  bf16_t* Qt = dOs + kTile * S;                                 // [D][72] Q2 transposed
  bf16_t* dOt = Qt + D * kStrideT;                              // [D][72] dO transposed
  float* lse2s = reinterpret_cast<float*>(dOt + D * kStrideT);  // [64]
  float* deltas = lse2s + kTile;                                // [64]
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int g = lane / 4, t = lane % 4;

  const int64_t kv_heads = int64_t(B) * Hkv;  // early key blocks (most queries) first
  const int kb = int(blockIdx.x / kv_heads);
  const int64_t bk = blockIdx.x % kv_heads;
  const int b = int(bk / Hkv), kv = int(bk % Hkv), group = H / Hkv;
  const int64_t ld = int64_t(H + 2 * Hkv) * D, ld_out = int64_t(H) * D;
  const float* seq = qkv + int64_t(b) * T * ld;
  const int j0 = kb * kTile;
  const float qscale = kLog2e / sqrtf(float(D));
  load_rows<D>(Ks, seq + int64_t(H + kv) * D, ld, j0, T, 1.0f);
  load_rows<D>(Vs, seq + int64_t(H + Hkv + kv) * D, ld, j0, T, 1.0f);

  const int k0 = warp * 16;                          // this warp's keys in the tile
  const int key_a = j0 + k0 + g, key_b = key_a + 8;  // the two keys this thread holds
  float dk[D / 8][4], dv[D / 8][4];
  KILN_UNROLL
  for (int nd = 0; nd < D / 8; ++nd) KILN_UNROLL
  for (int e = 0; e < 4; ++e) dk[nd][e] = dv[nd][e] = 0.0f;

  for (int gh = 0; gh < group; ++gh) {
    const int h = kv * group + gh;
    const float* q_src = seq + int64_t(h) * D;
    const float* do_src = dout + int64_t(b) * T * ld_out + int64_t(h) * D;
    const float* lse_row = lse + (int64_t(b) * H + h) * T;
    const float* delta_row = delta + (int64_t(b) * H + h) * T;
    for (int i0 = j0; i0 < T; i0 += kTile) {  // earlier queries see none of these keys
      __syncthreads();  // the previous query tile is consumed (K, V stored, first time)
      load_rows<D>(Qs, q_src, ld, i0, T, qscale);
      load_rows_transposed<D>(Qt, q_src, ld, i0, T, qscale);
      load_rows<D>(dOs, do_src, ld_out, i0, T, 1.0f);
      load_rows_transposed<D>(dOt, do_src, ld_out, i0, T, 1.0f);
      for (int x = threadIdx.x; x < kTile; x += kThreads) {
        const int i = i0 + x;
        lse2s[x] = i < T ? lse_row[i] * kLog2e : 0.0f;
        deltas[x] = i < T ? delta_row[i] : 0.0f;
      }
      __syncthreads();
      KILN_NO_UNROLL
      for (int q0 = 0; q0 < kTile; q0 += 16) {
        if (i0 + q0 >= T) break;               // warp-uniform
        if (i0 + q0 + 15 < j0 + k0) continue;  // all 16 queries precede all 16 keys
        // S2^T[16 keys, 16 queries] = K Q2^T and dP^T = V dO^T.
        float st[2][4], dpt[2][4];
        KILN_UNROLL
        for (int nt = 0; nt < 2; ++nt) KILN_UNROLL
        for (int e = 0; e < 4; ++e) st[nt][e] = dpt[nt][e] = 0.0f;
        KILN_UNROLL
        for (int kk = 0; kk < D / 16; ++kk) {
          uint32_t ka[4], va[4];
          load_a(ka, Ks, S, k0, 16 * kk, g, t);
          load_a(va, Vs, S, k0, 16 * kk, g, t);
          KILN_UNROLL
          for (int nt = 0; nt < 2; ++nt) {
            uint32_t b0, b1;
            load_b(b0, b1, Qs, S, q0 + 8 * nt, 16 * kk, g, t);
            mma(st[nt], ka, b0, b1);
            load_b(b0, b1, dOs, S, q0 + 8 * nt, 16 * kk, g, t);
            mma(dpt[nt], va, b0, b1);
          }
        }
        // P^T = exp2(S2^T - lse2), dS^T = P^T (dP^T - Delta) where live (j <= i < T).
        KILN_UNROLL
        for (int nt = 0; nt < 2; ++nt) KILN_UNROLL
        for (int e = 0; e < 4; ++e) {
          const int ql = q0 + 8 * nt + 2 * t + (e & 1);
          const int i = i0 + ql;
          const int j = e < 2 ? key_a : key_b;
          const bool live = i < T && j <= i;
          const float p = live ? exp2f(st[nt][e] - lse2s[ql]) : 0.0f;
          dpt[nt][e] = live ? p * (dpt[nt][e] - deltas[ql]) : 0.0f;
          st[nt][e] = p;
        }
        uint32_t pa[4], sa[4];
        accumulators_to_a(pa, st[0], st[1]);
        accumulators_to_a(sa, dpt[0], dpt[1]);
        // dV[16, D] += P^T dO and dK2[16, D] += dS^T Q2 (16 queries deep).
        KILN_UNROLL
        for (int nd = 0; nd < D / 8; ++nd) {
          uint32_t b0, b1;
          load_b(b0, b1, dOt, kStrideT, 8 * nd, q0, g, t);
          mma(dv[nd], pa, b0, b1);
          load_b(b0, b1, Qt, kStrideT, 8 * nd, q0, g, t);
          mma(dk[nd], sa, b0, b1);
        }
      }
    }
  }
  KILN_UNROLL
  for (int nd = 0; nd < D / 8; ++nd) {
    const int d = 8 * nd + 2 * t;
    if (key_a < T) {
      float* row = dqkv + (int64_t(b) * T + key_a) * ld;
      *reinterpret_cast<float2*>(row + int64_t(H + kv) * D + d) =
          make_float2(dk[nd][0] * kLn2, dk[nd][1] * kLn2);  // dK = ln2 dS^T Q2
      *reinterpret_cast<float2*>(row + int64_t(H + Hkv + kv) * D + d) =
          make_float2(dv[nd][0], dv[nd][1]);
    }
    if (key_b < T) {
      float* row = dqkv + (int64_t(b) * T + key_b) * ld;
      *reinterpret_cast<float2*>(row + int64_t(H + kv) * D + d) =
          make_float2(dk[nd][2] * kLn2, dk[nd][3] * kLn2);
      *reinterpret_cast<float2*>(row + int64_t(H + Hkv + kv) * D + d) =
          make_float2(dv[nd][2], dv[nd][3]);
    }
  }
}

// --- dQ ---------------------------------------------------------------------------------------
template <int D>
__global__ void __launch_bounds__(kThreads)
    mma_dq_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                  const float* delta, int B, int T, int H, int Hkv, int n_qblocks) {
  KILN_DYNAMIC_SHARED(unsigned char, smem_raw);
  constexpr int S = stride_of<D>();
  bf16_t* Qs = reinterpret_cast<bf16_t*>(smem_raw);  // [64][S] Q2 of this block
  bf16_t* dOs = Qs + kTile * S;                      // [64][S]
  bf16_t* Ks = dOs + kTile * S;                      // [64][S] key tile
  bf16_t* Vs = Ks + kTile * S;                       // [64][S]
  bf16_t* Kt = Vs + kTile * S;                       // [D][72] key tile transposed
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int g = lane / 4, t = lane % 4;

  const int64_t heads = int64_t(B) * H;
  const int qb = n_qblocks - 1 - int(blockIdx.x / heads);
  const int64_t bh = blockIdx.x % heads;
  const int b = int(bh / H), h = int(bh % H), kv = h / (H / Hkv);
  const int64_t ld = int64_t(H + 2 * Hkv) * D, ld_out = int64_t(H) * D;
  const float* seq = qkv + int64_t(b) * T * ld;
  const float* k_src = seq + int64_t(H + kv) * D;
  const float* v_src = seq + int64_t(H + Hkv + kv) * D;
  const int i0 = qb * kTile;
  const float scale = 1.0f / sqrtf(float(D));
  load_rows<D>(Qs, seq + int64_t(h) * D, ld, i0, T, scale * kLog2e);
  load_rows<D>(dOs, dout + int64_t(b) * T * ld_out + int64_t(h) * D, ld_out, i0, T, 1.0f);

  const int r0 = warp * 16;
  const int row_a = i0 + r0 + g, row_b = row_a + 8;
  const float* lse_row = lse + (int64_t(b) * H + h) * T;
  const float* delta_row = delta + (int64_t(b) * H + h) * T;
  const float lse2_a = row_a < T ? lse_row[row_a] * kLog2e : 0.0f;
  const float lse2_b = row_b < T ? lse_row[row_b] * kLog2e : 0.0f;
  const float delta_a = row_a < T ? delta_row[row_a] : 0.0f;
  const float delta_b = row_b < T ? delta_row[row_b] : 0.0f;
  float dq[D / 8][4];
  KILN_UNROLL
  for (int nd = 0; nd < D / 8; ++nd) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.0f;

  const int last = min(T, i0 + kTile) - 1;
  for (int j0 = 0; j0 <= last; j0 += kTile) {
    __syncthreads();  // the previous key tile is consumed (Q, dO stored, first time)
    load_rows<D>(Ks, k_src, ld, j0, T, 1.0f);
    load_rows<D>(Vs, v_src, ld, j0, T, 1.0f);
    load_rows_transposed<D>(Kt, k_src, ld, j0, T, 1.0f);
    __syncthreads();
    KILN_NO_UNROLL
    for (int kq = 0; kq < kTile; kq += 16) {
      if (j0 + kq > i0 + r0 + 15 || j0 + kq >= T) break;  // keys past every row of the warp
      float s[2][4], dp[2][4];
      KILN_UNROLL
      for (int nt = 0; nt < 2; ++nt) KILN_UNROLL
      for (int e = 0; e < 4; ++e) s[nt][e] = dp[nt][e] = 0.0f;
      KILN_UNROLL
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[4], da[4];
        load_a(qa, Qs, S, r0, 16 * kk, g, t);
        load_a(da, dOs, S, r0, 16 * kk, g, t);
        KILN_UNROLL
        for (int nt = 0; nt < 2; ++nt) {
          uint32_t b0, b1;
          load_b(b0, b1, Ks, S, kq + 8 * nt, 16 * kk, g, t);
          mma(s[nt], qa, b0, b1);
          load_b(b0, b1, Vs, S, kq + 8 * nt, 16 * kk, g, t);
          mma(dp[nt], da, b0, b1);
        }
      }
      // dS = exp2(S2 - lse2) (dP - Delta) where live (j <= i, j < T).
      KILN_UNROLL
      for (int nt = 0; nt < 2; ++nt) KILN_UNROLL
      for (int e = 0; e < 4; ++e) {
        const int j = j0 + kq + 8 * nt + 2 * t + (e & 1);
        const bool upper = e >= 2;
        const int i = upper ? row_b : row_a;
        const bool live = j <= i && j < T;
        const float p = live ? exp2f(s[nt][e] - (upper ? lse2_b : lse2_a)) : 0.0f;
        dp[nt][e] = live ? p * (dp[nt][e] - (upper ? delta_b : delta_a)) : 0.0f;
      }
      uint32_t sa[4];
      accumulators_to_a(sa, dp[0], dp[1]);
      // dQ[16, D] += dS[16, 16 keys] K[16 keys, D]
      KILN_UNROLL
      for (int nd = 0; nd < D / 8; ++nd) {
        uint32_t b0, b1;
        load_b(b0, b1, Kt, kStrideT, 8 * nd, kq, g, t);
        mma(dq[nd], sa, b0, b1);
      }
    }
  }
  KILN_UNROLL
  for (int nd = 0; nd < D / 8; ++nd) {
    const int d = 8 * nd + 2 * t;
    if (row_a < T)
      *reinterpret_cast<float2*>(dqkv + (int64_t(b) * T + row_a) * ld + int64_t(h) * D + d) =
          make_float2(dq[nd][0] * scale, dq[nd][1] * scale);  // dQ = scale dS K
    if (row_b < T)
      *reinterpret_cast<float2*>(dqkv + (int64_t(b) * T + row_b) * ld + int64_t(h) * D + d) =
          make_float2(dq[nd][2] * scale, dq[nd][3] * scale);
  }
}

}  // namespace
}  // namespace kiln::mma_attention
