// Kernels of the fused RMSNorm (launched by rmsnorm.cu; also compiled for the CPU by
// tests/test_cuda_kernels_emulated.cpp). The math and the deterministic dweight
// reduction are described in rmsnorm.cu.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::rmsnorm_kernels {
namespace {

using namespace kiln::cuda;

constexpr int kForwardThreads = 256;  // 8 rows in flight per block
constexpr int kRowsPerBlock = 32;     // backward: rows per partial dweight row
constexpr int kBackwardThreads = 256;
constexpr int kSumGroups = 32;  // backward reduce: partial rows split in 32 strided groups

__global__ void rmsnorm_forward_kernel(void* out, bool out_bf16, float* rstd, const float* x,
                                       const float* weight, int64_t N, int C, float eps) {
  const int lane = threadIdx.x % kWarp;
  const int warps_per_block = blockDim.x / kWarp;
  const int64_t warps_total = int64_t(gridDim.x) * warps_per_block;
  for (int64_t i = int64_t(blockIdx.x) * warps_per_block + threadIdx.x / kWarp; i < N;
       i += warps_total) {
    const float* xi = x + i * C;
    float sum_sq = 0.0f;
    for (int c = lane; c < C; c += kWarp) sum_sq += xi[c] * xi[c];
    sum_sq = warp_sum(sum_sq);
    const float r = float(1.0 / sqrt(double(sum_sq) / C + double(eps)));
    if (lane == 0) rstd[i] = r;
    for (int c = lane; c < C; c += kWarp) store_as(out, out_bf16, i * C + c, xi[c] * r * weight[c]);
  }
}

// Block `blk` handles rows [32 blk, 32 blk + 32): dx (+=) and partials[blk, :] (=).
__global__ void rmsnorm_backward_kernel(float* dx, float* partials, const float* dout,
                                        const float* x, const float* weight, const float* rstd,
                                        int64_t N, int C, int64_t n_blocks) {
  __shared__ float row_k[kRowsPerBlock];  // r^3 * dot / C
  __shared__ float row_r[kRowsPerBlock];  // r
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  for (int64_t blk = blockIdx.x; blk < n_blocks; blk += gridDim.x) {
    const int64_t row0 = blk * kRowsPerBlock;
    const int rows = int(N - row0 < kRowsPerBlock ? N - row0 : kRowsPerBlock);
    for (int r = warp; r < rows; r += n_warps) {
      const float* xi = x + (row0 + r) * C;
      const float* gi = dout + (row0 + r) * C;
      float dot = 0.0f;  // sum_c w_c dout_c x_c
      for (int c = lane; c < C; c += kWarp) dot += weight[c] * gi[c] * xi[c];
      dot = warp_sum(dot);
      if (lane == 0) {
        const float rr = rstd[row0 + r];
        row_r[r] = rr;
        row_k[r] = rr * rr * rr * dot / float(C);
      }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float wc = weight[c];
      float acc = 0.0f;
      for (int r = 0; r < rows; ++r) {
        const int64_t idx = (row0 + r) * C + c;
        const float g = dout[idx], xv = x[idx], rr = row_r[r];
        dx[idx] += rr * wc * g - row_k[r] * xv;
        acc += g * xv * rr;
      }
      partials[blk * C + c] = acc;
    }
    __syncthreads();  // row_k / row_r are rewritten by the next block-row
  }
}

// dweight[c] (+=) sum over partial rows, in double: thread (tx, ty) sums rows
// ty, ty + 32, ... of column c, then the 32 group sums are added in group order.
__global__ void rmsnorm_dweight_kernel(float* dweight, const float* partials, int64_t n_blocks,
                                       int C) {
  __shared__ double sums[kSumGroups][kWarp + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = blockIdx.x * kWarp + tx;
  double acc = 0.0;
  if (c < C)
    for (int64_t b = ty; b < n_blocks; b += kSumGroups) acc += double(partials[b * C + c]);
  sums[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && c < C) {
    double total = 0.0;
    for (int g = 0; g < kSumGroups; ++g) total += sums[g][tx];
    dweight[c] += float(total);
  }
}

}  // namespace
}  // namespace kiln::rmsnorm_kernels
