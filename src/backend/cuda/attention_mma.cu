// Launchers of the tensor-core flash attention kernels (attention_mma_kernels.cuh):
// shared-memory limits, grids, dispatch on head_dim 64 / 128.
#include <cuda_runtime.h>

#include "backend/cuda/attention_launch.h"
#include "backend/cuda/attention_mma_kernels.cuh"

namespace kiln {
namespace {

using namespace kiln::mma_attention;

template <int D>
void set_limits(int max_optin) {
  auto limit = [&](int bytes) { return bytes < max_optin ? bytes : max_optin; };
  cudaFuncSetAttribute(mma_forward_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       limit(forward_smem_bytes<D>()));
  cudaFuncSetAttribute(mma_dkdv_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       limit(dkdv_smem_bytes<D>()));
  cudaFuncSetAttribute(mma_dq_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       limit(dq_smem_bytes<D>()));
}

template <int D>
void forward(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
             cudaStream_t stream) {
  const int n_qblocks = (T + kTile - 1) / kTile;
  mma_forward_kernel<D>
      <<<unsigned(int64_t(n_qblocks) * B * H), kThreads, forward_smem_bytes<D>(), stream>>>(
          out, lse, qkv, B, T, H, Hkv, n_qblocks);
}

template <int D>
void backward(float* dqkv, const float* dout, const float* qkv, const float* lse,
              const float* delta, int B, int T, int H, int Hkv, cudaStream_t stream) {
  const int n_blocks = (T + kTile - 1) / kTile;
  mma_dkdv_kernel<D>
      <<<unsigned(int64_t(n_blocks) * B * Hkv), kThreads, dkdv_smem_bytes<D>(), stream>>>(
          dqkv, dout, qkv, lse, delta, B, T, H, Hkv);
  mma_dq_kernel<D><<<unsigned(int64_t(n_blocks) * B * H), kThreads, dq_smem_bytes<D>(), stream>>>(
      dqkv, dout, qkv, lse, delta, B, T, H, Hkv, n_blocks);
}

}  // namespace

void mma_attention_init(int max_optin) {
  set_limits<64>(max_optin);
  set_limits<128>(max_optin);
}

bool mma_attention_supported(int D) { return D == 64 || D == 128; }

int mma_attention_smem_bytes(int D, bool backward_pass) {
  if (D == 64)
    return backward_pass ? max(dkdv_smem_bytes<64>(), dq_smem_bytes<64>())
                         : forward_smem_bytes<64>();
  return backward_pass ? max(dkdv_smem_bytes<128>(), dq_smem_bytes<128>())
                       : forward_smem_bytes<128>();
}

void mma_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                           int D, CUstream_st* stream) {
  if (D == 64)
    forward<64>(out, lse, qkv, B, T, H, Hkv, stream);
  else
    forward<128>(out, lse, qkv, B, T, H, Hkv, stream);
}

void mma_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* lse,
                            const float* delta, int B, int T, int H, int Hkv, int D,
                            CUstream_st* stream) {
  if (D == 64)
    backward<64>(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, stream);
  else
    backward<128>(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, stream);
}

}  // namespace kiln
