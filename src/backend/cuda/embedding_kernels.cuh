// Kernels of the deterministic embedding gradient (launched by embedding_backward.cu;
// also compiled for the CPU by tests/test_cuda_kernels_emulated.cpp).
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::embedding_kernels {
namespace {

using namespace kiln::cuda;

__global__ void iota_kernel(int32_t* out, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = int32_t(i);
}

// sorted[N]: token ids ascending; order[N]: their positions (ascending within a run).
__global__ void embedding_backward_runs_kernel(float* dtable, const int32_t* sorted,
                                               const int32_t* order, const float* dout, int64_t N,
                                               int C) {
  for (int64_t j = blockIdx.x; j < N; j += gridDim.x) {
    const int32_t token = sorted[j];
    if (token < 0 || (j > 0 && sorted[j - 1] == token)) continue;  // not the start of a run
    int64_t end = j + 1;
    while (end < N && sorted[end] == token) ++end;
    float* dst = dtable + int64_t(token) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      float acc = dst[c];
      for (int64_t k = j; k < end; ++k) acc += dout[int64_t(order[k]) * C + c];
      dst[c] = acc;
    }
  }
}

}  // namespace
}  // namespace kiln::embedding_kernels
