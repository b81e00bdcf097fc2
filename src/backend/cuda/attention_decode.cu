// CudaBackend::attention_decode: attention of new tokens over a KV cache
// (semantics in backend.h; kernels in attention_decode_kernels.cuh). fp32
// throughout, as the CPU backend.
#include <cstdint>
#include <string>

#include "backend/cuda/attention_decode_kernels.cuh"
#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace kiln {

using namespace decode_kernels;

void CudaBackend::attention_decode(float* out, float* k_cache, float* v_cache, const float* qkv,
                                   int B, int T, int H, int Hkv, int D, const int32_t* pos,
                                   int max_len) {
  const char* op = "attention_decode";
  if (B <= 0 || T <= 0 || H <= 0 || Hkv <= 0 || D <= 0 || max_len <= 0)
    fail_input(op, "batch, tokens, heads, head_dim and max_len must be positive", "> 0",
               "B=" + std::to_string(B) + " T=" + std::to_string(T) + " H=" + std::to_string(H) +
                   " Hkv=" + std::to_string(Hkv) + " D=" + std::to_string(D) +
                   " max_len=" + std::to_string(max_len));
  if (H % Hkv != 0)
    fail_input(op, "n_kv_heads must divide n_heads", "a divisor of " + std::to_string(H),
               std::to_string(Hkv));
  if (D > kMaxHeadDim)
    fail_input(op, "head_dim too large for the decode kernel", "<= " + std::to_string(kMaxHeadDim),
               std::to_string(D));
  const int64_t elements = int64_t(B) * T * Hkv * D;
  kv_append_kernel<<<grid_for(elements, 256), 256, 0, stream_>>>(k_cache, v_cache, qkv, B, T, H,
                                                                 Hkv, D, pos, max_len);
  check_launch(op);
  const int64_t warps = int64_t(B) * T * H;
  const int64_t blocks = (warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > int64_t(INT32_MAX))
    fail_input(op, "too many tokens for one launch", "< 2^31 blocks", std::to_string(blocks));
  decode_attention_kernel<<<unsigned(blocks), 32 * kWarpsPerBlock, 0, stream_>>>(
      out, k_cache, v_cache, qkv, B, T, H, Hkv, D, pos, max_len, float(1.0 / sqrt(double(D))));
  check_launch(op);
}

}  // namespace kiln
