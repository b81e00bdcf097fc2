// Kernels of the causal GQA flash attention in fp32 on the CUDA cores, for any
// head_dim D <= 256 (launched by attention_simt.cu; also compiled for the CPU by
// tests/test_cuda_kernels_emulated.cpp). It is the fp32-compute path and the
// reference the tensor-core kernels (attention_mma_kernels.cuh) are checked against.
//
// Math (per query head, scale = 1/sqrt(D), causal: key j <= query i), in log2 units
// as the CPU kernels: Q2 = Q * scale * log2(e), S2 = Q2 K^T,
//   forward:  P = exp2(S2 - m2) / l, O = P V, lse = (m2 + log2 l) ln 2
//   backward: P = exp2(S2 - lse log2 e), dP = dO V^T, dS = P o (dP - Delta),
//             Delta_i = sum_d dO_id O_id, dQ = scale dS K, dK = ln2 dS^T Q2, dV = P^T dO
//
// Layout of the work: tiles of 32 rows, one row per lane in the score step.
//   forward: block = (sequence, query head, 32 query rows); 8 warps x 4 rows. Per
//            key tile of 32, lane j scores key j against the warp's row (a length-D
//            dot from shared memory), the row's running max is a warp max, and the
//            lane-owned output columns d = lane + 32k take P V through shuffles.
//   dK, dV:  block = (sequence, kv head, 32 keys); 8 warps x 4 keys; loops over the
//            group's query heads and every query tile at or after the keys. Lane i
//            scores query i against the warp's key; dK, dV rows accumulate in
//            registers. The block alone writes its keys' dK and dV rows.
//   dQ:      block = (sequence, query head, 32 query rows); loops over key tiles.
// Nothing is atomic and every sum runs in a fixed order: bitwise reproducible. Only
// tiles live in shared memory (O(T D) per block at most): no T x T buffer anywhere.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include "backend/cuda/device_common.cuh"

namespace kiln::simt_attention {
namespace {

using namespace kiln::cuda;

constexpr int kTile = 32;  // rows per tile = lanes
constexpr int kWarps = 8;
constexpr int kRowsPerWarp = kTile / kWarps;  // 4
constexpr int kThreads = kWarps * kWarp;
constexpr float kLog2e = 1.44269504088896340736f;
constexpr float kLn2 = 0.69314718055994530942f;

// Row stride of a tile read one row per lane: odd, so the 32 lanes hit 32 banks.
__host__ __device__ constexpr int lane_stride(int D) { return D % 2 == 0 ? D + 1 : D; }

__host__ __device__ constexpr int forward_smem_floats(int D) {
  return kTile * D + kTile * lane_stride(D) + kTile * D;  // Q, K (lane rows), V
}
__host__ __device__ constexpr int backward_smem_floats(int D) {
  return 2 * kTile * D + 2 * kTile * lane_stride(D) +
         2 * kTile;  // 2 broadcast, 2 lane tiles, lse, delta
}

// Loads rows [row0, row0 + 32) of one head (D values at `base + row * ld`) into a
// shared tile with row stride `stride`, times `factor`; rows >= T are zero.
__device__ void load_tile(float* tile, int stride, const float* base, int64_t ld, int row0, int T,
                          int D, float factor) {
  for (int e = threadIdx.x; e < kTile * D; e += blockDim.x) {
    const int r = e / D, d = e - r * D;
    const int row = row0 + r;
    tile[r * stride + d] = row < T ? base[int64_t(row) * ld + d] * factor : 0.0f;
  }
}

// --- forward ---------------------------------------------------------------------------
template <int DPL>
__global__ void __launch_bounds__(kThreads)
    simt_forward_kernel(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                        int D, int n_qblocks) {
  KILN_DYNAMIC_SHARED(float, smem);
  const int Dl = lane_stride(D);
  float* Qs = smem;             // [32][D]  Q2 rows, read broadcast
  float* Ks = Qs + kTile * D;   // [32][Dl] key rows, one per lane
  float* Vs = Ks + kTile * Dl;  // [32][D]  value rows, read along d
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;

  // The most expensive query blocks (late rows see the most keys) are scheduled first.
  const int64_t heads = int64_t(B) * H;
  const int qb = n_qblocks - 1 - int(blockIdx.x / heads);
  const int64_t bh = blockIdx.x % heads;
  const int b = int(bh / H), h = int(bh % H), kv = h / (H / Hkv);
  const int64_t ld = int64_t(H + 2 * Hkv) * D;
  const float* seq = qkv + int64_t(b) * T * ld;
  const float* k_base = seq + int64_t(H + kv) * D;
  const float* v_base = seq + int64_t(H + Hkv + kv) * D;
  const int i0 = qb * kTile;
  const int q_rows = min(kTile, T - i0);
  load_tile(Qs, D, seq + int64_t(h) * D, ld, i0, T, D, kLog2e / sqrtf(float(D)));

  float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][DPL];
  KILN_UNROLL
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
    KILN_UNROLL
    for (int k = 0; k < DPL; ++k) o[rr][k] = 0.0f;
  }
  const int last = i0 + q_rows - 1;  // keys past the last query row are never seen
  for (int j0 = 0; j0 <= last; j0 += kTile) {
    __syncthreads();  // the previous tile is consumed (and Qs is stored)
    load_tile(Ks, Dl, k_base, ld, j0, T, D, 1.0f);
    load_tile(Vs, D, v_base, ld, j0, T, D, 1.0f);
    __syncthreads();
    KILN_UNROLL
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr, i = i0 + r;
      if (r >= q_rows || j0 > i) continue;  // warp-uniform
      const int j = j0 + lane;
      float s = -INFINITY;  // masked: contributes exp2(-inf) = 0
      if (j <= i) {
        const float* q = Qs + r * D;
        const float* k = Ks + lane * Dl;
        float acc = 0.0f;
        for (int d = 0; d < D; ++d) acc += q[d] * k[d];
        s = acc;
      }
      // Online softmax: rescale the running sums by 2^(m_old - m_new). Key j0 <= i is
      // always live, so m_new is finite.
      const float m_new = fmaxf(m[rr], warp_max(s));
      const float alpha = exp2f(m[rr] - m_new);  // 0 on the first tile
      const float p = exp2f(s - m_new);
      l[rr] = l[rr] * alpha + p;  // per-lane partial sum, reduced at the end
      m[rr] = m_new;
      KILN_UNROLL
      for (int k = 0; k < DPL; ++k) o[rr][k] *= alpha;
      const int live = min(kTile, i - j0 + 1);  // keys j0 .. j0 + live - 1
      for (int jj = 0; jj < live; ++jj) {
        const float pj = __shfl_sync(kFullMask, p, jj);
        const float* v = Vs + jj * D;
        KILN_UNROLL
        for (int k = 0; k < DPL; ++k) {
          const int d = lane + kWarp * k;
          if (d < D) o[rr][k] += pj * v[d];
        }
      }
    }
  }
  KILN_UNROLL
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int r = warp * kRowsPerWarp + rr, i = i0 + r;
    if (r >= q_rows) continue;
    const float sum = warp_sum(l[rr]);
    float* dst = out + (int64_t(b) * T + i) * int64_t(H) * D + int64_t(h) * D;
    const float inv = 1.0f / sum;
    KILN_UNROLL
    for (int k = 0; k < DPL; ++k) {
      const int d = lane + kWarp * k;
      if (d < D) dst[d] = o[rr][k] * inv;
    }
    if (lane == 0) lse[(int64_t(b) * H + h) * T + i] = (m[rr] + log2f(sum)) * kLn2;
  }
}

// --- Delta = rowsum(dO o O) ---------------------------------------------------------------
// One warp per (b, t, h) row of dout/out; delta[B, H, T] (=).
__global__ void delta_kernel(float* delta, const float* dout, const float* out, int B, int T, int H,
                             int D) {
  const int lane = threadIdx.x % kWarp;
  const int64_t rows = int64_t(B) * T * H;
  const int64_t warps_total = int64_t(gridDim.x) * (blockDim.x / kWarp);
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / kWarp) + threadIdx.x / kWarp; row < rows;
       row += warps_total) {
    const float* g = dout + row * D;
    const float* o = out + row * D;
    float sum = 0.0f;
    for (int d = lane; d < D; d += kWarp) sum += g[d] * o[d];
    sum = warp_sum(sum);
    if (lane == 0) {
      const int64_t bt = row / H;
      const int h = int(row - bt * H);
      const int64_t b = bt / T, t = bt - b * T;
      delta[(b * H + h) * T + t] = sum;
    }
  }
}

// --- dK, dV ---------------------------------------------------------------------------------
template <int DPL>
__global__ void __launch_bounds__(kThreads)
    simt_dkdv_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                     const float* delta, int B, int T, int H, int Hkv, int D) {
  KILN_DYNAMIC_SHARED(float, smem);
  const int Dl = lane_stride(D);
  float* Ks = smem;                 // [32][D]  this block's keys, read broadcast
  float* Vs = Ks + kTile * D;       // [32][D]
  float* Qs = Vs + kTile * D;       // [32][Dl] Q2 rows of the query tile, one per lane
  float* dOs = Qs + kTile * Dl;     // [32][Dl]
  float* lse2s = dOs + kTile * Dl;  // [32] lse * log2(e)
  float* deltas = lse2s + kTile;    // [32]
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;

  // Early key blocks see the most queries: scheduled first.
  const int64_t groups = int64_t(B) * Hkv;
  const int kb = int(blockIdx.x / groups);
  const int64_t bk = blockIdx.x % groups;
  const int b = int(bk / Hkv), kv = int(bk % Hkv), group = H / Hkv;
  const int64_t ld = int64_t(H + 2 * Hkv) * D, ld_out = int64_t(H) * D;
  const float* seq = qkv + int64_t(b) * T * ld;
  const int j0 = kb * kTile;
  const float qscale = kLog2e / sqrtf(float(D));
  load_tile(Ks, D, seq + int64_t(H + kv) * D, ld, j0, T, D, 1.0f);
  load_tile(Vs, D, seq + int64_t(H + Hkv + kv) * D, ld, j0, T, D, 1.0f);

  float dk[kRowsPerWarp][DPL], dv[kRowsPerWarp][DPL];
  KILN_UNROLL
  for (int rr = 0; rr < kRowsPerWarp; ++rr) KILN_UNROLL
  for (int k = 0; k < DPL; ++k) dk[rr][k] = dv[rr][k] = 0.0f;

  for (int g = 0; g < group; ++g) {
    const int h = kv * group + g;
    const float* q_base = seq + int64_t(h) * D;
    const float* do_base = dout + int64_t(b) * T * ld_out + int64_t(h) * D;
    const float* lse_row = lse + (int64_t(b) * H + h) * T;
    const float* delta_row = delta + (int64_t(b) * H + h) * T;
    for (int i0 = j0; i0 < T; i0 += kTile) {  // queries before the keys see none of them
      __syncthreads();  // the previous tile is consumed (K, V stored on the first pass)
      load_tile(Qs, Dl, q_base, ld, i0, T, D, qscale);
      load_tile(dOs, Dl, do_base, ld_out, i0, T, D, 1.0f);
      if (threadIdx.x < kTile) {
        const int i = i0 + threadIdx.x;
        lse2s[threadIdx.x] = i < T ? lse_row[i] * kLog2e : 0.0f;
        deltas[threadIdx.x] = i < T ? delta_row[i] : 0.0f;
      }
      __syncthreads();
      KILN_UNROLL
      for (int rr = 0; rr < kRowsPerWarp; ++rr) {
        const int kr = warp * kRowsPerWarp + rr, j = j0 + kr;
        if (j >= T) continue;  // warp-uniform
        const int i = i0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (i < T && i >= j) {
          const float* q = Qs + lane * Dl;
          const float* dO = dOs + lane * Dl;
          const float* k = Ks + kr * D;
          const float* v = Vs + kr * D;
          float s2 = 0.0f, dp = 0.0f;
          for (int d = 0; d < D; ++d) {
            s2 += q[d] * k[d];
            dp += dO[d] * v[d];
          }
          p = exp2f(s2 - lse2s[lane]);
          ds = p * (dp - deltas[lane]);
        }
        // Lanes lo .. hi-1 can be live: queries i0 + lane with j <= i < T.
        const int lo = max(0, j - i0), hi = min(kTile, T - i0);
        for (int jj = lo; jj < hi; ++jj) {
          const float pj = __shfl_sync(kFullMask, p, jj);
          const float dsj = __shfl_sync(kFullMask, ds, jj);
          const float* dO = dOs + jj * Dl;
          const float* q = Qs + jj * Dl;
          KILN_UNROLL
          for (int k = 0; k < DPL; ++k) {
            const int d = lane + kWarp * k;
            if (d < D) {
              dv[rr][k] += pj * dO[d];
              dk[rr][k] += dsj * q[d];
            }
          }
        }
      }
    }
  }
  KILN_UNROLL
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int j = j0 + warp * kRowsPerWarp + rr;
    if (j >= T) continue;
    float* row = dqkv + (int64_t(b) * T + j) * ld;
    KILN_UNROLL
    for (int k = 0; k < DPL; ++k) {
      const int d = lane + kWarp * k;
      if (d < D) {
        row[int64_t(H + kv) * D + d] = dk[rr][k] * kLn2;  // dK = ln2 dS^T Q2
        row[int64_t(H + Hkv + kv) * D + d] = dv[rr][k];
      }
    }
  }
}

// --- dQ -------------------------------------------------------------------------------------
template <int DPL>
__global__ void __launch_bounds__(kThreads)
    simt_dq_kernel(float* dqkv, const float* dout, const float* qkv, const float* lse,
                   const float* delta, int B, int T, int H, int Hkv, int D, int n_qblocks) {
  KILN_DYNAMIC_SHARED(float, smem);
  const int Dl = lane_stride(D);
  float* Qs = smem;             // [32][D]  Q2 rows of this block, read broadcast
  float* dOs = Qs + kTile * D;  // [32][D]
  float* Ks = dOs + kTile * D;  // [32][Dl] key rows, one per lane
  float* Vs = Ks + kTile * Dl;  // [32][Dl]
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;

  const int64_t heads = int64_t(B) * H;
  const int qb = n_qblocks - 1 - int(blockIdx.x / heads);
  const int64_t bh = blockIdx.x % heads;
  const int b = int(bh / H), h = int(bh % H), kv = h / (H / Hkv);
  const int64_t ld = int64_t(H + 2 * Hkv) * D, ld_out = int64_t(H) * D;
  const float* seq = qkv + int64_t(b) * T * ld;
  const float* k_base = seq + int64_t(H + kv) * D;
  const float* v_base = seq + int64_t(H + Hkv + kv) * D;
  const int i0 = qb * kTile;
  const int q_rows = min(kTile, T - i0);
  const float scale = 1.0f / sqrtf(float(D));
  load_tile(Qs, D, seq + int64_t(h) * D, ld, i0, T, D, scale * kLog2e);
  load_tile(dOs, D, dout + int64_t(b) * T * ld_out + int64_t(h) * D, ld_out, i0, T, D, 1.0f);

  float dq[kRowsPerWarp][DPL], lse2[kRowsPerWarp], dlt[kRowsPerWarp];
  KILN_UNROLL
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int i = i0 + warp * kRowsPerWarp + rr;
    const bool ok = i < T;
    lse2[rr] = ok ? lse[(int64_t(b) * H + h) * T + i] * kLog2e : 0.0f;
    dlt[rr] = ok ? delta[(int64_t(b) * H + h) * T + i] : 0.0f;
    KILN_UNROLL
    for (int k = 0; k < DPL; ++k) dq[rr][k] = 0.0f;
  }
  const int last = i0 + q_rows - 1;
  for (int j0 = 0; j0 <= last; j0 += kTile) {
    __syncthreads();
    load_tile(Ks, Dl, k_base, ld, j0, T, D, 1.0f);
    load_tile(Vs, Dl, v_base, ld, j0, T, D, 1.0f);
    __syncthreads();
    KILN_UNROLL
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int r = warp * kRowsPerWarp + rr, i = i0 + r;
      if (r >= q_rows || j0 > i) continue;  // warp-uniform
      const int j = j0 + lane;
      float ds = 0.0f;
      if (j <= i) {
        const float* q = Qs + r * D;
        const float* dO = dOs + r * D;
        const float* k = Ks + lane * Dl;
        const float* v = Vs + lane * Dl;
        float s2 = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; ++d) {
          s2 += q[d] * k[d];
          dp += dO[d] * v[d];
        }
        ds = exp2f(s2 - lse2[rr]) * (dp - dlt[rr]);
      }
      const int live = min(kTile, i - j0 + 1);
      for (int jj = 0; jj < live; ++jj) {
        const float dsj = __shfl_sync(kFullMask, ds, jj);
        const float* k = Ks + jj * Dl;
        KILN_UNROLL
        for (int kk = 0; kk < DPL; ++kk) {
          const int d = lane + kWarp * kk;
          if (d < D) dq[rr][kk] += dsj * k[d];
        }
      }
    }
  }
  KILN_UNROLL
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int i = i0 + warp * kRowsPerWarp + rr;
    if (i >= T) continue;
    float* row = dqkv + (int64_t(b) * T + i) * ld + int64_t(h) * D;
    KILN_UNROLL
    for (int k = 0; k < DPL; ++k) {
      const int d = lane + kWarp * k;
      if (d < D) row[d] = dq[rr][k] * scale;  // dQ = scale dS K
    }
  }
}

}  // namespace
}  // namespace kiln::simt_attention
