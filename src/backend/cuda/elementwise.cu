// CudaBackend's elementwise ops: cast, add, embedding forward, RoPE, SwiGLU.
// Memory-bound kernels: grid-stride loops in 64-bit indices over coalesced
// accesses, one element per thread per iteration. Each kernel does the same fp32
// arithmetic as the CPU kernels (elementwise_kernels.inc); bf16 outputs are rounded
// exactly as kiln::float_to_bf16.
#include <string>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_common.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "core/error.h"

namespace kiln {
namespace {

using namespace kiln::cuda;
using namespace kiln::elementwise_kernels;

constexpr int kThreads = 256;

void check_positive(const char* op, const char* what, int64_t value) {
  if (value <= 0)
    fail_input(op, std::string(what) + " must be positive", "> 0", std::to_string(value));
}

// Threads per block for a row kernel over `width` items: whole warps, at most 256.
inline int row_threads(int64_t width) {
  const int64_t t = (width + 31) / 32 * 32;
  return int(t < 256 ? t : 256);
}

}  // namespace

void CudaBackend::cast(void* dst, DType dst_dtype, const float* src, int64_t n) {
  if (n < 0) fail_input("cast", "negative element count", ">= 0", std::to_string(n));
  if (n == 0) return;
  if (dst_dtype == DType::f32) {
    copy(dst, src, size_t(n) * sizeof(float));
    return;
  }
  cast_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_>>>(static_cast<uint16_t*>(dst),
                                                                    src, n);
  check_launch("cast");
}

void CudaBackend::add(float* out, const float* a, const float* b, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n, kThreads), kThreads, 0, stream_>>>(out, a, b, n);
  check_launch("add");
}

void CudaBackend::embedding_forward(float* out, const int32_t* tokens, const float* table,
                                    int64_t N, int C) {
  if (N <= 0) return;
  check_positive("embedding_forward", "C", C);
  embedding_forward_kernel<<<grid_for(N, 1), row_threads(C), 0, stream_>>>(out, tokens, table, N,
                                                                           C);
  check_launch("embedding_forward");
}

constexpr int64_t kMaxRopePositions = int64_t(1) << 26;

void CudaBackend::rope(const char* op, float* qkv, int B, int T, int H, int Hkv, int D,
                       const RopeParams& rope_params, int pos0, bool inverse) {
  const double theta = rope_params.theta;
  check_positive(op, "B", B);
  check_positive(op, "T", T);
  check_positive(op, "n_heads", H);
  check_positive(op, "n_kv_heads", Hkv);
  check_positive(op, "head_dim", D);
  if (D % 2 != 0) fail_input(op, "head_dim must be even", "even", std::to_string(D));
  if (H % Hkv != 0)
    fail_input(op, "n_kv_heads must divide n_heads", "a divisor of " + std::to_string(H),
               std::to_string(Hkv));
  if (pos0 < 0) fail_input(op, "start position must not be negative", ">= 0", std::to_string(pos0));
  if (!(theta > 0)) fail_input(op, "rope_theta must be positive", "> 0", std::to_string(theta));
  if (int64_t(pos0) + T > kMaxRopePositions)
    fail_input(op, "position beyond the RoPE table limit",
               "<= " + std::to_string(kMaxRopePositions), std::to_string(int64_t(pos0) + T));
  const float* sin_table = nullptr;
  const float* cos_table = rope_table(D, rope_params, pos0 + T, &sin_table);
  const int64_t rows = int64_t(B) * T;
  const int64_t row_stride = int64_t(H + 2 * Hkv) * D;
  const int threads = row_threads(int64_t(H + Hkv) * (D / 2));
  rope_kernel<<<grid_for(rows, 1), threads, 0, stream_>>>(
      qkv, rows, T, row_stride, H + Hkv, D, cos_table, sin_table, pos0, nullptr,
      inverse ? -1.0f : 1.0f);
  check_launch(op);
}

// The positions are device memory, so the table is sized for max_len up front (a
// captured decode step then never grows it).
void CudaBackend::rope_forward_at(float* qkv, int B, int T, int H, int Hkv, int D,
                                  const RopeParams& rope_params, const int32_t* pos, int max_len) {
  const char* op = "rope_forward_at";
  check_positive(op, "B", B);
  check_positive(op, "T", T);
  check_positive(op, "n_heads", H);
  check_positive(op, "n_kv_heads", Hkv);
  check_positive(op, "head_dim", D);
  check_positive(op, "max_len", max_len);
  if (D % 2 != 0) fail_input(op, "head_dim must be even", "even", std::to_string(D));
  if (int64_t(max_len) > kMaxRopePositions)
    fail_input(op, "max_len beyond the RoPE table limit",
               "<= " + std::to_string(kMaxRopePositions), std::to_string(max_len));
  const float* sin_table = nullptr;
  const float* cos_table = rope_table(D, rope_params, max_len, &sin_table);
  const int64_t rows = int64_t(B) * T;
  const int64_t row_stride = int64_t(H + 2 * Hkv) * D;
  const int threads = row_threads(int64_t(H + Hkv) * (D / 2));
  rope_kernel<<<grid_for(rows, 1), threads, 0, stream_>>>(qkv, rows, T, row_stride, H + Hkv, D,
                                                          cos_table, sin_table, 0, pos, 1.0f);
  check_launch(op);
}

void CudaBackend::rope_forward(float* qkv, int B, int T, int H, int Hkv, int D,
                               const RopeParams& rope_params, int pos0) {
  rope("rope_forward", qkv, B, T, H, Hkv, D, rope_params, pos0, false);
}

void CudaBackend::rope_backward(float* dqkv, int B, int T, int H, int Hkv, int D,
                                const RopeParams& rope_params, int pos0) {
  rope("rope_backward", dqkv, B, T, H, Hkv, D, rope_params, pos0, true);
}

void CudaBackend::swiglu_forward(void* out, DType out_dtype, const float* h13, int64_t N, int F) {
  if (N <= 0) return;
  check_positive("swiglu_forward", "F", F);
  swiglu_forward_kernel<<<grid_for(N, 1), row_threads(F), 0, stream_>>>(
      out, out_dtype == DType::bf16, h13, N, F);
  check_launch("swiglu_forward");
}

void CudaBackend::swiglu_backward(float* dh13, const float* dout, const float* h13, int64_t N,
                                  int F) {
  if (N <= 0) return;
  check_positive("swiglu_backward", "F", F);
  swiglu_backward_kernel<<<grid_for(N, 1), row_threads(F), 0, stream_>>>(dh13, dout, h13, N, F);
  check_launch("swiglu_backward");
}

}  // namespace kiln
