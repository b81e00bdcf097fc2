// Host-side entry points of the attention kernels (attention_simt.cu,
// attention_mma.cu), called by attention.cu. Pointers are device memory; shapes as
// in backend.h. Every launcher enqueues on `stream` and returns at once.
#pragma once
#include <cstdint>

struct CUstream_st;

namespace kiln {

// Raises the dynamic shared-memory limit of every attention kernel that needs more
// than 48 KiB (once, at backend construction). `max_optin` is the device's limit.
void cuda_attention_init(int max_optin);  // attention.cu: both of the below
void simt_attention_init(int max_optin);
void mma_attention_init(int max_optin);

// Shared memory the kernels need for head_dim D (bytes), for the shape checks.
int simt_attention_smem_bytes(int D, bool backward);
int mma_attention_smem_bytes(int D, bool backward);
bool mma_attention_supported(int D);  // D = 64 or 128

// out[B, T, H*D] (=), lse[B, H, T] (=)
void simt_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                            int D, CUstream_st* stream);
// delta[B, H, T] (=) sum_d dout * out: the softmax-backward row term
void attention_delta(float* delta, const float* dout, const float* out, int B, int T, int H, int D,
                     CUstream_st* stream);
// dqkv (=) from dout, qkv, lse and delta
void simt_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* lse,
                             const float* delta, int B, int T, int H, int Hkv, int D,
                             CUstream_st* stream);

void mma_attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                           int D, CUstream_st* stream);
void mma_attention_backward(float* dqkv, const float* dout, const float* qkv, const float* lse,
                            const float* delta, int B, int T, int H, int Hkv, int D,
                            CUstream_st* stream);

}  // namespace kiln
