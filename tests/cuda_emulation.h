// A CPU emulation of the small part of CUDA that Kiln's kernel headers use, so that
// the kernels themselves (src/backend/cuda/*_kernels.cuh, compiled as plain C++) run
// and are checked on machines without a GPU.
//
// Each GPU thread of a block is one std::thread; blocks run one after another.
//   __syncthreads()          a std::barrier over the block's threads
//   __shfl_sync / _xor_sync  an exchange through the warp's slots between two barriers
//   mma.m16n8k16 (bf16)      the warp's 32 fragments gathered into A[16x16] and B[16x8]
//                            by the PTX ISA's fragment layout, then C += A B in fp32
//   __shared__ arrays        function statics (one block at a time shares them)
//   dynamic shared memory    a per-launch buffer, refilled with 0xff bytes per block so a
//                            read of an element the block never wrote shows up as NaN
// Warp-synchronous code must reach every shuffle and mma with all 32 lanes, as on the
// GPU; a kernel that does not deadlocks here (the test times out) instead of silently
// reading garbage.
//
// Include this before a *_kernels.cuh header, in a test file only.
#pragma once
#define KILN_CUDA_EMULATION 1

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "core/dtype.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) alignas(n)

namespace kiln::emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

struct Warp {
  std::barrier<> barrier{32};
  uint64_t exchange[32] = {};
  uint32_t a[32][4] = {};
  uint32_t b[32][2] = {};
};

struct ThreadState {
  Dim3 thread, block;
  unsigned linear = 0;  // x + y * blockDim.x: warps are runs of 32 linear ids
  Warp* warp = nullptr;
  std::barrier<>* block_barrier = nullptr;
  unsigned char* shared = nullptr;
};

inline thread_local ThreadState t_state;
inline Dim3 g_grid, g_block;

inline unsigned lane() { return t_state.linear % 32; }

// Runs kernel(args...) on a grid of `grid` blocks of block.x * block.y threads, with
// `shared_bytes` of dynamic shared memory.
template <class Kernel, class... Args>
void launch(unsigned grid, Dim3 block_dim, size_t shared_bytes, Kernel kernel, Args... args) {
  g_grid = {grid, 1, 1};
  g_block = block_dim;
  const unsigned block = block_dim.x * block_dim.y;
  std::vector<unsigned char> shared(shared_bytes + 64);
  unsigned char* base = shared.data() + (16 - reinterpret_cast<uintptr_t>(shared.data()) % 16) % 16;
  for (unsigned b = 0; b < grid; ++b) {
    std::fill(shared.begin(), shared.end(), 0xff);
    std::barrier<> block_barrier(block);
    std::vector<std::unique_ptr<Warp>> warps;
    for (unsigned w = 0; w < (block + 31) / 32; ++w) warps.push_back(std::make_unique<Warp>());
    std::vector<std::thread> threads;
    threads.reserve(block);
    for (unsigned t = 0; t < block; ++t)
      threads.emplace_back([&, t] {
        t_state = ThreadState{{t % block_dim.x, t / block_dim.x, 0},
                              {b, 0, 0},
                              t,
                              warps[t / 32].get(),
                              &block_barrier,
                              base};
        kernel(args...);
      });
    for (std::thread& th : threads) th.join();
  }
}

template <class Kernel, class... Args>
void launch(unsigned grid, unsigned block, size_t shared_bytes, Kernel kernel, Args... args) {
  launch(grid, Dim3{block, 1, 1}, shared_bytes, kernel, args...);
}

template <class T>
T exchange(T value, unsigned source) {
  static_assert(sizeof(T) <= 8);
  Warp& w = *t_state.warp;
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  w.exchange[lane()] = bits;
  w.barrier.arrive_and_wait();
  T out;
  std::memcpy(&out, &w.exchange[source % 32], sizeof(T));
  w.barrier.arrive_and_wait();
  return out;
}

inline float bf16_half(uint32_t reg, int half) {
  return bf16_to_float(bf16{uint16_t(half ? reg >> 16 : reg & 0xffffu)});
}

}  // namespace kiln::emu

#define threadIdx (::kiln::emu::t_state.thread)
#define blockIdx (::kiln::emu::t_state.block)
#define blockDim (::kiln::emu::g_block)
#define gridDim (::kiln::emu::g_grid)
#define KILN_DYNAMIC_SHARED(type, name) \
  type* name = reinterpret_cast<type*>(::kiln::emu::t_state.shared)

inline void __syncthreads() { kiln::emu::t_state.block_barrier->arrive_and_wait(); }

template <class T>
T __shfl_xor_sync(unsigned, T value, int offset) {
  return kiln::emu::exchange(value, kiln::emu::lane() ^ unsigned(offset));
}
template <class T>
T __shfl_sync(unsigned, T value, int source) {
  return kiln::emu::exchange(value, unsigned(source));
}

inline uint32_t __float_as_uint(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float __uint_as_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float __int_as_float(int i) { return __uint_as_float(uint32_t(i)); }

struct float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  uint32_t x, y;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

struct alignas(4) __nv_bfloat162 {
  uint16_t x, y;  // x is the low half
};
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) {
  return {kiln::float_to_bf16(lo).bits, kiln::float_to_bf16(hi).bits};
}

using std::max;
using std::min;

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, lane = 4 g + t:
//   A regs: 0 (g, 2t..2t+1)  1 (g+8, 2t..)  2 (g, 2t+8..)  3 (g+8, 2t+8..), low half first
//   B regs: 0 (k 2t..2t+1, n g)  1 (k 2t+8..2t+9, n g)
//   C:      0 (g, 2t)  1 (g, 2t+1)  2 (g+8, 2t)  3 (g+8, 2t+1)
inline void kiln_emulated_mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                       uint32_t b1) {
  using namespace kiln::emu;
  Warp& w = *t_state.warp;
  const unsigned me = lane();
  for (int r = 0; r < 4; ++r) w.a[me][r] = a[r];
  w.b[me][0] = b0;
  w.b[me][1] = b1;
  w.barrier.arrive_and_wait();
  float A[16][16], B[16][8];
  for (unsigned l = 0; l < 32; ++l) {
    const unsigned g = l / 4, t = l % 4;
    for (int r = 0; r < 4; ++r) {
      const unsigned row = g + ((r & 1) ? 8 : 0), col = 2 * t + ((r & 2) ? 8 : 0);
      A[row][col] = bf16_half(w.a[l][r], 0);
      A[row][col + 1] = bf16_half(w.a[l][r], 1);
    }
    for (int r = 0; r < 2; ++r) {
      const unsigned k = 2 * t + (r ? 8 : 0);
      B[k][g] = bf16_half(w.b[l][r], 0);
      B[k + 1][g] = bf16_half(w.b[l][r], 1);
    }
  }
  const unsigned g = me / 4, t = me % 4;
  for (int e = 0; e < 4; ++e) {
    const unsigned row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
    float sum = c[e];
    for (int k = 0; k < 16; ++k) sum += A[row][k] * B[k][col];
    c[e] = sum;
  }
  w.barrier.arrive_and_wait();
}
