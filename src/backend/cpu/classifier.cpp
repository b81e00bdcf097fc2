// Fused classifier + cross-entropy on the CPU, chunked over rows so that the
// N x V logits never exist at once (N = B*T can be thousands, V up to ~150k).
//
// Per chunk of R rows (x_c = x[r0 : r0+R]):
//   logits[R, V]  (=)  x_c W^T                        oneDNN, cached primitive
//   per row i:    lse = max + log(sum exp(logits - max))
//                 loss_i (=) lse - logits[target_i]
//                 dlogits_i (=) (softmax_i - onehot(target_i)) * dloss, in the compute dtype
//   dx_c[R, C]    (=)  dlogits W                       only when dx is wanted
//   dW[V, C]      (+=) dlogits^T x_c
// The main chunk and the tail chunk are two shapes, so a run creates at most six
// primitives here. Buffers come from the GEMM cache's grow-only scratch.
#include "backend/cpu/classifier.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>

#include "backend/cpu/bf16_convert.h"
#include "backend/cpu/classifier_row.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm_cache.h"
#include "core/error.h"

namespace kiln {
namespace {

int64_t chunk_rows_from_env() {
  const char* env = std::getenv("KILN_CE_CHUNK");
  if (!env || !*env) return 0;
  char* end = nullptr;
  const long long rows = std::strtoll(env, &end, 10);
  if (*end != '\0' || rows <= 0)
    fail_input("KILN_CE_CHUNK", "not a positive row count", "an integer > 0", env);
  return rows;
}

std::atomic<int64_t> g_chunk_override{-1};  // -1: not read from the environment yet

}  // namespace

void set_classifier_chunk_rows(int64_t rows) { g_chunk_override.store(std::max<int64_t>(rows, 0)); }

int64_t classifier_chunk_rows(int64_t V) {
  int64_t override_rows = g_chunk_override.load();
  if (override_rows < 0) {
    override_rows = chunk_rows_from_env();
    g_chunk_override.store(override_rows);
  }
  if (override_rows > 0) return override_rows;
  int64_t rows = std::max<int64_t>(1, kClassifierChunkBytes / (std::max<int64_t>(V, 1) * 4));
  if (rows >= 16) rows = rows / 16 * 16;  // GEMM-friendly M
  return rows;
}

void CpuBackend::classifier_forward_backward(float* losses, float* dx, float* dW, const void* x,
                                             const void* W, DType dtype, const int32_t* targets,
                                             int64_t N, int C, int V, float dloss) {
  const char* where = "classifier_forward_backward";
  if (N < 0 || C <= 0 || V <= 0)
    fail_input(where, "bad shape", "N >= 0, C > 0, V > 0",
               "N=" + std::to_string(N) + " C=" + std::to_string(C) + " V=" + std::to_string(V));
  if (dx != nullptr && dW == nullptr)
    fail_input(where, "dx given without dW", "both or neither", "dW = null");
  // A target id >= V would index past the logits row: a bug upstream (the data
  // loader validates token ids against the vocabulary), caught before any write.
  for (int64_t i = 0; i < N; ++i)
    if (targets[i] >= V)
      fail_input(where, "target id of row " + std::to_string(i) + " outside the vocabulary",
                 "< " + std::to_string(V), std::to_string(targets[i]));
  if (N == 0) return;

  const bool backward = dx != nullptr;
  const int64_t chunk = std::min<int64_t>(classifier_chunk_rows(V), N);
  const size_t elem = dtype_size(dtype);
  // logits [chunk, V] fp32; with bf16 compute, dlogits [chunk, V] bf16 beside it
  // (with fp32 compute, dlogits overwrite the logits in place).
  float* logits = static_cast<float*>(gemm_scratch(*gemm_, 0, size_t(chunk) * V * sizeof(float)));
  void* dlogits = logits;
  if (backward && dtype == DType::bf16)
    dlogits = gemm_scratch(*gemm_, 1, size_t(chunk) * V * sizeof(uint16_t));
  const char* x_bytes = static_cast<const char*>(x);

  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t rows = std::min(chunk, N - r0);
    const void* x_chunk = x_bytes + size_t(r0) * C * elem;
    // logits[rows, V] (=) x_chunk[rows, C] W[V, C]^T
    matmul(logits, x_chunk, W, dtype, rows, V, C, false, true, false);

#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* row = logits + size_t(r) * V;
      const int32_t target = targets[r0 + r];
      if (!backward) {
        losses[r0 + r] = target < 0 ? 0.0f : cross_entropy_row_loss(row, V, target);
        continue;
      }
      if (target < 0) {
        losses[r0 + r] = 0.0f;
        std::fill(row, row + V, 0.0f);
      } else {
        losses[r0 + r] = cross_entropy_row_grad(row, V, target, dloss);
      }
      if (dtype == DType::bf16)
        f32_to_bf16(static_cast<uint16_t*>(dlogits) + size_t(r) * V, row, V);
    }
    if (!backward) continue;

    // dx_chunk[rows, C] (=) dlogits[rows, V] W[V, C]
    matmul(dx + size_t(r0) * C, dlogits, W, dtype, rows, C, V, false, false, false);
    // dW[V, C] (+=) dlogits[rows, V]^T x_chunk[rows, C]
    matmul(dW, dlogits, x_chunk, dtype, V, C, rows, true, false, true);
  }
}

}  // namespace kiln
