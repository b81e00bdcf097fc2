// Launchers of the fp32 flash attention kernels (attention_simt_kernels.cuh) and of
// the Delta kernel both attention paths share.
#include <cuda_runtime.h>

#include "backend/cuda/attention_launch.h"
#include "backend/cuda/attention_simt_kernels.cuh"

namespace kiln {
namespace {

using namespace kiln::simt_attention;

// Dispatch on the dims-per-lane bucket of D.
template <template <int> class Fn, typename... Args>
void with_dpl(int D, Args&&... args) {
  if (D <= 32)
    Fn<1>::run(args...);
  else if (D <= 64)
    Fn<2>::run(args...);
  else if (D <= 128)
    Fn<4>::run(args...);
  else
    Fn<8>::run(args...);
}

int max_d_of(int dpl) { return dpl * kWarp; }

template <int DPL>
void set_limits(int max_optin) {
  const int fwd = forward_smem_floats(max_d_of(DPL)) * 4;
  const int bwd = backward_smem_floats(max_d_of(DPL)) * 4;
  cudaFuncSetAttribute(simt_forward_kernel<DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       fwd < max_optin ? fwd : max_optin);
  cudaFuncSetAttribute(simt_dkdv_kernel<DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       bwd < max_optin ? bwd : max_optin);
  cudaFuncSetAttribute(simt_dq_kernel<DPL>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       bwd < max_optin ? bwd : max_optin);
}

template <int DPL>
struct Forward {
  static void run(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv, int D,
                  cudaStream_t stream) {
    const int n_qblocks = (T + kTile - 1) / kTile;
    const int64_t blocks = int64_t(n_qblocks) * B * H;
    simt_forward_kernel<DPL><<<unsigned(blocks), kThreads, forward_smem_floats(D) * 4, stream>>>(
        out, lse, qkv, B, T, H, Hkv, D, n_qblocks);
  }
};

template <int DPL>
struct Backward {
  static void run(float* dqkv, const float* dout, const float* qkv, const float* lse,
                  const float* delta, int B, int T, int H, int Hkv, int D, cudaStream_t stream) {
    const int n_blocks = (T + kTile - 1) / kTile;
    const size_t smem = size_t(backward_smem_floats(D)) * 4;
    simt_dkdv_kernel<DPL><<<unsigned(int64_t(n_blocks) * B * Hkv), kThreads, smem, stream>>>(
        dqkv, dout, qkv, lse, delta, B, T, H, Hkv, D);
    simt_dq_kernel<DPL><<<unsigned(int64_t(n_blocks) * B * H), kThreads, smem, stream>>>(
        dqkv, dout, qkv, lse, delta, B, T, H, Hkv, D, n_blocks);
  }
};

}  // namespace

void simt_attention_init(int max_optin) {
  set_limits<1>(max_optin);
  set_limits<2>(max_optin);
  set_limits<4>(max_optin);
  set_limits<8>(max_optin);
}

int simt_attention_smem_bytes(int D, bool backward) {
  return (backward ? backward_smem_floats(D) : forward_smem_floats(D)) * 4;
}

void simt_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                            int D, CUstream_st* stream) {
  with_dpl<Forward>(D, out, lse, qkv, B, T, H, Hkv, D, stream);
}

void attention_delta(float* delta, const float* dout, const float* out, int B, int T, int H, int D,
                     CUstream_st* stream) {
  const int64_t rows = int64_t(B) * T * H;
  const int64_t warps_per_block = 8;
  int64_t blocks = (rows + warps_per_block - 1) / warps_per_block;
  if (blocks > 65535) blocks = 65535;  // grid-stride beyond
  delta_kernel<<<unsigned(blocks), int(warps_per_block * kWarp), 0, stream>>>(delta, dout, out, B,
                                                                              T, H, D);
}

void simt_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* lse,
                             const float* delta, int B, int T, int H, int Hkv, int D,
                             CUstream_st* stream) {
  with_dpl<Backward>(D, dqkv, dout, qkv, lse, delta, B, T, H, Hkv, D, stream);
}

}  // namespace kiln
