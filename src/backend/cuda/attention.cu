// CudaBackend's causal GQA attention ops: argument checks, the choice between the
// tensor-core kernels (attention_mma.cu: bf16 operands, fp32 accumulation, head_dim
// 64 and 128) and the fp32 CUDA-core kernels (attention_simt.cu: any head_dim up to
// 256), and the softmax-backward row term Delta kept in grow-only scratch.
//
// Choice (CudaBackendOptions::attention, or KILN_CUDA_ATTENTION):
//   auto  tensor cores when the compute dtype is bf16 and head_dim is 64 or 128; the
//         fp32 kernels otherwise (fp32 compute keeps attention in fp32, as the CPU).
//   simt  always the fp32 kernels.   mma  always tensor cores (64 / 128 only).
#include <algorithm>
#include <cstdint>
#include <string>

#include "backend/cuda/attention_launch.h"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace kiln {
namespace {

constexpr int kMaxSimtHeadDim = 256;

void check_shape(const char* op, int B, int T, int H, int Hkv, int D) {
  const std::string where = std::string("attention ") + op;
  if (B < 0 || T < 0)
    fail_input(where, "negative batch or sequence length", ">= 0",
               std::to_string(B) + " x " + std::to_string(T));
  if (H <= 0 || Hkv <= 0 || D <= 0)
    fail_input(
        where, "heads and head_dim must be positive", "> 0",
        "H=" + std::to_string(H) + " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D));
  if (H % Hkv != 0)
    fail_input(where, "n_heads must be a multiple of n_kv_heads", "H % Hkv == 0",
               "H=" + std::to_string(H) + " Hkv=" + std::to_string(Hkv));
  // One block per (32-row tile, sequence, head): the grid must fit in 2^31 - 1 blocks.
  if (int64_t(T + 31) / 32 * B * H > int64_t(INT32_MAX))
    fail_input(where, "too many attention tiles for one launch", "< 2^31",
               std::to_string(int64_t(T + 31) / 32 * B * H));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void cuda_attention_init(int max_optin) {
  simt_attention_init(max_optin);
  mma_attention_init(max_optin);
}

// Tensor cores or not, for this head_dim; throws when the configured kernel cannot
// run the shape. The tensor-core kernels read rows as float4: their buffers must be
// 16-byte aligned (every buffer from alloc() is).
static bool use_mma(CudaAttentionKernel kind, DType compute, int D, int max_smem, const char* op,
                    bool aligned) {
  const std::string where = std::string("attention ") + op;
  bool mma = false;
  switch (kind) {
    case CudaAttentionKernel::mma:
      if (!mma_attention_supported(D))
        fail_input(where, "the tensor-core attention kernels need head_dim 64 or 128", "64 or 128",
                   std::to_string(D) + " (use KILN_CUDA_ATTENTION=simt)");
      if (!aligned)
        fail_input(where, "the tensor-core attention kernels need 16-byte aligned buffers",
                   "aligned", "unaligned");
      mma = true;
      break;
    case CudaAttentionKernel::auto_:
      mma = compute == DType::bf16 && mma_attention_supported(D) && aligned;
      break;
    case CudaAttentionKernel::simt:
      break;
  }
  if (!mma && D > kMaxSimtHeadDim)
    fail_input(where, "head_dim too large for the CUDA attention kernels",
               "<= " + std::to_string(kMaxSimtHeadDim), std::to_string(D));
  const int need =
      mma ? std::max(mma_attention_smem_bytes(D, false), mma_attention_smem_bytes(D, true))
          : std::max(simt_attention_smem_bytes(D, false), simt_attention_smem_bytes(D, true));
  if (need > max_smem)
    fail_input(where, "head_dim needs more shared memory than this GPU has per block",
               "<= " + std::to_string(max_smem) + " bytes", std::to_string(need) + " bytes");
  return mma;
}

void CudaBackend::attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H,
                                    int Hkv, int D) {
  check_shape("forward", B, T, H, Hkv, D);
  if (B == 0 || T == 0) return;
  const bool aligned = aligned16(out) && aligned16(qkv);
  if (use_mma(attention_, options_.compute_dtype, D, max_smem_optin_, "forward", aligned))
    mma_attention_forward(out, lse, qkv, B, T, H, Hkv, D, stream_);
  else
    simt_attention_forward(out, lse, qkv, B, T, H, Hkv, D, stream_);
  check_launch("attention_forward");
}

void CudaBackend::attention_backward(float* dqkv, const float* dout, const float* qkv,
                                     const float* out, const float* lse, int B, int T, int H,
                                     int Hkv, int D) {
  check_shape("backward", B, T, H, Hkv, D);
  if (B == 0 || T == 0) return;
  const bool aligned = aligned16(dqkv) && aligned16(dout) && aligned16(qkv);
  const bool mma =
      use_mma(attention_, options_.compute_dtype, D, max_smem_optin_, "backward", aligned);
  // delta[B, H, T] (=) sum_d dout * out
  float* delta = static_cast<float*>(
      scratch(kScratchAttnDelta, size_t(B) * size_t(H) * size_t(T) * sizeof(float)));
  attention_delta(delta, dout, out, B, T, H, D, stream_);
  check_launch("attention_backward (delta)");
  if (mma)
    mma_attention_backward(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, D, stream_);
  else
    simt_attention_backward(dqkv, dout, qkv, lse, delta, B, T, H, Hkv, D, stream_);
  check_launch("attention_backward");
}

}  // namespace kiln
