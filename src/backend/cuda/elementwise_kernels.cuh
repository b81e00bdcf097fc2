// Kernels of CudaBackend's elementwise ops (launched by elementwise.cu; also compiled
// for the CPU by tests/test_cuda_kernels_emulated.cpp): cast, add, embedding forward,
// RoPE, SwiGLU. Grid-stride loops in 64-bit indices over coalesced accesses; the same
// fp32 arithmetic as the CPU kernels (elementwise_kernels.inc); bf16 outputs rounded
// exactly as kiln::float_to_bf16.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

#include "backend/cuda/device_common.cuh"

namespace kiln::elementwise_kernels {
namespace {

using namespace kiln::cuda;

// --- cast, add ---------------------------------------------------------------------
// dst[i] (=) bf16(src[i])
__global__ void cast_bf16_kernel(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) dst[i] = to_bf16_bits(src[i]);
}

// out[i] (=) a[i] + b[i]; out may alias a or b (each element is read before written).
__global__ void add_kernel(float* out, const float* a, const float* b, int64_t n) {
  for (int64_t i = grid_first(); i < n; i += grid_stride()) out[i] = a[i] + b[i];
}

// --- embedding ---------------------------------------------------------------------
// out[i, c] (=) table[tokens[i], c]; a negative id (a bug upstream: the loaders check
// ids) writes NaN rows so it cannot pass silently. One block row-loop per token.
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* table,
                                         int64_t N, int C) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const int32_t token = tokens[i];
    float* dst = out + i * C;
    if (token < 0) {
      for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = __int_as_float(0x7fc00000);
      continue;
    }
    const float* src = table + int64_t(token) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
  }
}

// --- RoPE --------------------------------------------------------------------------
// One block per token row (block-stride), threads over the (head, i < D/2) pairs of
// the first `heads` = H + Hkv heads of the row (q then k):
//   x[i] <- x[i] cos - x[i + D/2] sin,   x[i + D/2] <- x[i + D/2] cos + x[i] sin
// with sin negated for the inverse rotation (backward).
// Row r is at position pos0 + r % T, or seq_pos[r / T] + r % T (device memory) when
// seq_pos is not null.
__global__ void rope_kernel(float* qkv, int64_t rows, int T, int64_t row_stride, int heads, int D,
                            const float* cos_table, const float* sin_table, int pos0,
                            const int32_t* seq_pos, float sign) {
  const int half = D / 2;
  const int per_row = heads * half;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t pos = (seq_pos ? seq_pos[row / T] : pos0) + row % T;
    const float* cs = cos_table + pos * half;
    const float* sn = sin_table + pos * half;
    float* base = qkv + row * row_stride;
    for (int k = threadIdx.x; k < per_row; k += blockDim.x) {
      const int h = k / half, i = k - h * half;
      const float c = cs[i], s = sign * sn[i];
      float* lo = base + h * D + i;
      float* hi = lo + half;
      const float a = *lo, b = *hi;
      *lo = a * c - b * s;
      *hi = b * c + a * s;
    }
  }
}

// --- SwiGLU ------------------------------------------------------------------------
// out[i, j] (=) silu(h1) * h3 with silu(a) = a / (1 + e^-a); h13 row = [h1 | h3].
// One block per row (block-stride), threads over j.
__global__ void swiglu_forward_kernel(void* out, bool out_bf16, const float* h13, int64_t N,
                                      int F) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const float* h1 = h13 + i * 2 * F;
    const float* h3 = h1 + F;
    for (int j = threadIdx.x; j < F; j += blockDim.x) {
      const float a = h1[j];
      store_as(out, out_bf16, i * F + j, a / (1.0f + expf(-a)) * h3[j]);
    }
  }
}

// s = sigmoid(a): dh1 = dout h3 s (1 + a (1 - s)), dh3 = dout a s   (dh13 =)
__global__ void swiglu_backward_kernel(float* dh13, const float* dout, const float* h13, int64_t N,
                                       int F) {
  for (int64_t i = blockIdx.x; i < N; i += gridDim.x) {
    const float* h1 = h13 + i * 2 * F;
    const float* h3 = h1 + F;
    const float* g = dout + i * F;
    float* d1 = dh13 + i * 2 * F;
    float* d3 = d1 + F;
    for (int j = threadIdx.x; j < F; j += blockDim.x) {
      const float a = h1[j];
      const float s = 1.0f / (1.0f + expf(-a));
      d1[j] = g[j] * h3[j] * s * (1.0f + a * (1.0f - s));
      d3[j] = g[j] * a * s;
    }
  }
}

}  // namespace
}  // namespace kiln::elementwise_kernels
