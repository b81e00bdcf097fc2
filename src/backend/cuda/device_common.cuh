// Device-side helpers shared by Kiln's CUDA kernels: the bf16 rounding every
// backend agrees on, warp and block reductions in a fixed order (so results do not
// depend on scheduling), and grid-stride index ranges in 64-bit.
//
// Kernel headers (*_kernels.cuh) are also compiled as plain C++ for a CPU emulation of
// the GPU (tests/cuda_emulation.h defines KILN_CUDA_EMULATION and the CUDA built-ins);
// the few lines that differ are marked.
#pragma once
#ifndef KILN_CUDA_EMULATION
#include <cuda_runtime.h>
#endif

#include <cstdint>

// Loop unrolling hints (no-ops in the CPU emulation, where g++ does not know them).
#ifdef KILN_CUDA_EMULATION
#define KILN_UNROLL
#define KILN_NO_UNROLL
#else
#define KILN_UNROLL _Pragma("unroll")
#define KILN_NO_UNROLL _Pragma("unroll 1")
#endif

// The block's dynamic shared memory as `type* name` (16-byte aligned).
#ifndef KILN_CUDA_EMULATION
#define KILN_DYNAMIC_SHARED(type, name)                          \
  extern __shared__ __align__(16) unsigned char name##_bytes_[]; \
  type* name = reinterpret_cast<type*>(name##_bytes_)
#endif

namespace kiln::cuda {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// fp32 -> bf16 bits, round to nearest even, NaN stays a quiet NaN: bit for bit
// kiln::float_to_bf16 (core/dtype.h), so CPU and GPU copies of a weight agree.
__device__ __forceinline__ uint16_t to_bf16_bits(float value) {
  const uint32_t u = __float_as_uint(value);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float bf16_bits_to_float(uint16_t bits) {
  return __uint_as_float(uint32_t(bits) << 16);
}

// Stores `value` at out[i] in fp32 or (rounded) bf16.
__device__ __forceinline__ void store_as(void* out, bool bf16, int64_t i, float value) {
  if (bf16)
    static_cast<uint16_t*>(out)[i] = to_bf16_bits(value);
  else
    static_cast<float*>(out)[i] = value;
}

// Butterfly reductions: every lane ends with the same value, combined in the same
// order on every run.
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  KILN_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  KILN_UNROLL
  for (int offset = 16; offset > 0; offset >>= 1)
    v = fmaxf(v, __shfl_xor_sync(kFullMask, v, offset));
  return v;
}

// Sum over the whole block (blockDim.x a multiple of 32, at most 1024); every thread
// gets the result. `shared` holds at least 32 T. Ends with a barrier, so `shared`
// may be reused right after.
template <typename T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int n_warps = blockDim.x / kWarp;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = lane < n_warps ? shared[lane] : T(0);
  total = warp_sum(total);
  __syncthreads();
  return total;
}

// Grid-stride loop bounds in 64 bits: for (int64_t i = first(); i < n; i += stride()).
__device__ __forceinline__ int64_t grid_first() {
  return int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace kiln::cuda
