// The cross-entropy row kernel of the fused classifier (launched by classifier.cu; also
// compiled for the CPU by tests/test_cuda_kernels_emulated.cpp). See classifier.cu.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::classifier_kernels {
namespace {

using namespace kiln::cuda;

// One (max, sum) pair of an online softmax: sum = sum_j exp(l_j - max).
struct MaxSum {
  float max;
  double sum;
};

__device__ __forceinline__ MaxSum combine(MaxSum a, MaxSum b) {
  if (a.max == -INFINITY) return b;
  if (b.max == -INFINITY) return a;
  const float m = fmaxf(a.max, b.max);
  return {m, a.sum * double(expf(a.max - m)) + b.sum * double(expf(b.max - m))};
}

// One block per row of the chunk (block-stride over rows). `logits` [rows, V] fp32 is
// rewritten in place with dlogits when dlogits_f32 is the same buffer; with bf16
// compute, dlogits go to the separate bf16 buffer.
__global__ void cross_entropy_rows_kernel(float* losses, float* logits, void* dlogits,
                                          bool dlogits_bf16, bool backward, const int32_t* targets,
                                          int64_t rows, int V, float dloss) {
  __shared__ float shared_max[kWarp];
  __shared__ double shared_sum[kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float* row = logits + r * V;
    const int32_t target = targets[r];
    if (target < 0) {  // no target: loss 0, no gradient
      if (threadIdx.x == 0) losses[r] = 0.0f;
      if (backward)
        for (int j = threadIdx.x; j < V; j += blockDim.x)
          store_as(dlogits, dlogits_bf16, r * V + j, 0.0f);
      continue;
    }
    // Pass 1: the row's max and sum of exponentials, online per thread.
    MaxSum acc{-INFINITY, 0.0};
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
      const float l = row[j];
      if (l > acc.max) {
        acc.sum = acc.sum * double(expf(acc.max - l)) + 1.0;  // exp(-inf) = 0 on the first
        acc.max = l;
      } else {
        acc.sum += double(expf(l - acc.max));
      }
    }
    // Combine across the warp, then across warps, in a fixed order.
    KILN_UNROLL
    for (int offset = 16; offset > 0; offset >>= 1) {
      MaxSum other{__shfl_xor_sync(kFullMask, acc.max, offset),
                   __shfl_xor_sync(kFullMask, acc.sum, offset)};
      acc = combine(acc, other);
    }
    if (lane == 0) {
      shared_max[warp] = acc.max;
      shared_sum[warp] = acc.sum;
    }
    __syncthreads();
    MaxSum total{-INFINITY, 0.0};
    for (int w = 0; w < n_warps; ++w) total = combine(total, MaxSum{shared_max[w], shared_sum[w]});
    const bool bad_target = target >= V;
    const float logit_target = bad_target ? 0.0f : row[target];
    if (threadIdx.x == 0)
      losses[r] = bad_target ? __int_as_float(0x7fc00000)
                             : float(double(total.max) + log(total.sum) - double(logit_target));
    __syncthreads();  // everyone has read row[target] and the shared sums
    if (backward) {
      // dlogits = exp(l - m) * (dloss / s) - onehot * dloss
      const float scale =
          bad_target ? __int_as_float(0x7fc00000) : float(double(dloss) / total.sum);
      for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float d = expf(row[j] - total.max) * scale;
        if (j == target) d -= dloss;
        store_as(dlogits, dlogits_bf16, r * V + j, d);
      }
    }
    __syncthreads();  // the row's in-place dlogits are complete before the next row's reads
  }
}

}  // namespace
}  // namespace kiln::classifier_kernels
