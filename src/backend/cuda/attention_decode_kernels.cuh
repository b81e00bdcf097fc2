// The kernels behind CudaBackend::attention_decode (attention_decode.cu), in a
// header so tests/test_cuda_kernels_emulated.cpp can run the same source on the CPU.
//
// kv_append_kernel writes the T new keys and values of every sequence into its
// cache slot. decode_attention_kernel then gives each (token, query head) one warp:
// lane l holds output dims l, l + 32, ... (head_dim <= 256, 8 per lane); the warp
// walks cache positions 0..p in order with an online softmax (running max and
// sum), the q . k dot reduced across the warp by shuffles. Positions are read on
// the device, so the step can be captured in a CUDA graph.
#pragma once
#include <cstdint>

namespace kiln::decode_kernels {

constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;
constexpr int kWarpsPerBlock = 4;

__global__ void kv_append_kernel(float* k_cache, float* v_cache, const float* qkv, int B, int T,
                                 int H, int Hkv, int D, const int32_t* pos, int max_len) {
  const int64_t kv = int64_t(Hkv) * D, row = int64_t(H + 2 * Hkv) * D;
  const int64_t total = int64_t(B) * T * kv;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t token = i / kv, e = i % kv;
    const int b = int(token / T), t = int(token % T);
    const int64_t at = (int64_t(b) * max_len + pos[b] + t) * kv + e;
    const float* src = qkv + token * row;
    k_cache[at] = src[int64_t(H) * D + e];
    v_cache[at] = src[int64_t(H + Hkv) * D + e];
  }
}

__global__ void decode_attention_kernel(float* out, const float* k_cache, const float* v_cache,
                                        const float* qkv, int B, int T, int H, int Hkv, int D,
                                        const int32_t* pos, int max_len, float scale) {
  const int lane = threadIdx.x % 32;
  const int64_t warp = blockIdx.x * int64_t(kWarpsPerBlock) + threadIdx.x / 32;
  const int64_t tasks = int64_t(B) * T * H;
  if (warp >= tasks) return;
  const int h = int(warp % H);
  const int64_t token = warp / H;
  const int b = int(token / T), t = int(token % T);
  const int p = pos[b] + t;
  const int group = H / Hkv;
  const int64_t kv = int64_t(Hkv) * D;
  const float* q = qkv + token * int64_t(H + 2 * Hkv) * D + int64_t(h) * D;
  const float* keys = k_cache + int64_t(b) * max_len * kv + int64_t(h / group) * D;
  const float* values = v_cache + int64_t(b) * max_len * kv + int64_t(h / group) * D;
  float qr[kPerLane], acc[kPerLane];
  for (int j = 0; j < kPerLane; ++j) {
    const int d = lane + 32 * j;
    qr[j] = d < D ? q[d] * scale : 0.0f;
    acc[j] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int s = 0; s <= p; ++s) {
    const float* k = keys + int64_t(s) * kv;
    float dot = 0.0f;
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < D) dot += qr[j] * k[d];
    }
    for (int offset = 16; offset > 0; offset /= 2) dot += __shfl_xor_sync(0xffffffffu, dot, offset);
    const float m_new = fmaxf(m, dot);
    const float correction = expf(m - m_new);  // 0 on the first position (m = -inf)
    const float w = expf(dot - m_new);
    l = l * correction + w;
    const float* v = values + int64_t(s) * kv;
    for (int j = 0; j < kPerLane; ++j) {
      const int d = lane + 32 * j;
      if (d < D) acc[j] = acc[j] * correction + w * v[d];
    }
    m = m_new;
  }
  float* o = out + token * int64_t(H) * D + int64_t(h) * D;
  const float inv = 1.0f / l;
  for (int j = 0; j < kPerLane; ++j) {
    const int d = lane + 32 * j;
    if (d < D) o[d] = acc[j] * inv;
  }
}

}  // namespace kiln::decode_kernels
