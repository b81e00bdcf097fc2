// Fused classifier + cross-entropy on the GPU, chunked over rows so that the N x V
// logits never exist at once (N = B*T is thousands of rows, V up to ~150k).
//
// Per chunk of R rows (x_c = x[r0 : r0+R]):
//   logits[R, V]  (=)  x_c W^T                              cuBLASLt (cached plan)
//   per row (one block): m = max, s = sum exp(l - m)  (one pass, online rescaling;
//                 s in double), lse = m + log s
//                 loss_i (=) lse - logits[target_i]
//                 dlogits_i (=) (softmax_i - onehot(target_i)) * dloss, compute dtype
//   dx_c[R, C]    (=)  dlogits W                            when dx is wanted
//   dW[V, C]      (+=) dlogits^T x_c
// A target < 0 means "no target": loss 0 and a zero gradient row. A target >= V (a
// bug upstream: the loaders validate ids, and the host cannot look at device
// targets without a synchronisation) yields a NaN loss and NaN gradients, so it
// cannot pass silently.
// The chunk holds at most kLogitsBudget bytes of fp32 logits (KILN_CE_CHUNK=rows
// overrides it); main and tail chunk are two GEMM shapes, so six cached plans.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "backend/cuda/classifier_kernels.cuh"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/device_common.cuh"
#include "core/error.h"

namespace kiln {
namespace {

using namespace kiln::cuda;
using namespace kiln::classifier_kernels;

constexpr int64_t kLogitsBudget = int64_t(512) << 20;  // bytes of fp32 logits per chunk
constexpr int kRowThreads = 512;

int64_t chunk_rows(int64_t V) {
  if (const char* env = std::getenv("KILN_CE_CHUNK"); env && *env) {
    char* end = nullptr;
    const long long rows = std::strtoll(env, &end, 10);
    if (*end != '\0' || rows <= 0)
      fail_input("KILN_CE_CHUNK", "not a positive row count", "an integer > 0", env);
    return rows;
  }
  int64_t rows = kLogitsBudget / (V * 4);
  if (rows < 1) rows = 1;
  if (rows >= 64) rows = rows / 64 * 64;  // GEMM-friendly M
  return rows;
}

}  // namespace

void CudaBackend::classifier_forward_backward(float* losses, float* dx, float* dW, const void* x,
                                              const void* W, DType dtype, const int32_t* targets,
                                              int64_t N, int C, int V, float dloss) {
  const char* where = "classifier_forward_backward";
  if (N < 0 || C <= 0 || V <= 0)
    fail_input(where, "bad shape", "N >= 0, C > 0, V > 0",
               "N=" + std::to_string(N) + " C=" + std::to_string(C) + " V=" + std::to_string(V));
  if (dx != nullptr && dW == nullptr)
    fail_input(where, "dx given without dW", "both or neither", "dW = null");
  if (N == 0) return;
  const bool backward = dx != nullptr;
  const int64_t chunk = std::min<int64_t>(chunk_rows(V), N);
  const size_t elem = dtype_size(dtype);
  float* logits =
      static_cast<float*>(scratch(kScratchLogits, size_t(chunk) * size_t(V) * sizeof(float)));
  void* dlogits = logits;  // fp32 compute: dlogits overwrite the logits in place
  if (backward && dtype == DType::bf16)
    dlogits = scratch(kScratchDlogits, size_t(chunk) * size_t(V) * sizeof(uint16_t));
  const char* x_bytes = static_cast<const char*>(x);

  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t rows = std::min(chunk, N - r0);
    const void* x_chunk = x_bytes + size_t(r0) * size_t(C) * elem;
    // logits[rows, V] (=) x_chunk[rows, C] W[V, C]^T
    matmul(logits, x_chunk, W, dtype, rows, V, C, false, true, false);
    cross_entropy_rows_kernel<<<grid_for(rows, 1), kRowThreads, 0, stream_>>>(
        losses + r0, logits, dlogits, dtype == DType::bf16, backward, targets + r0, rows, V, dloss);
    check_launch(where);
    if (!backward) continue;
    // dx_chunk[rows, C] (=) dlogits[rows, V] W[V, C]
    matmul(dx + size_t(r0) * C, dlogits, W, dtype, rows, C, V, false, false, false);
    // dW[V, C] (+=) dlogits[rows, V]^T x_chunk[rows, C]
    matmul(dW, dlogits, x_chunk, dtype, V, C, rows, true, false, true);
  }
}

}  // namespace kiln
