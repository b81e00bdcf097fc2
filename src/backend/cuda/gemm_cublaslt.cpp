// CUDA GEMM through cuBLASLt, one cached plan per shape.
//
// Row-major to column-major: see gemm_layout.h (cuBLAS's first operand is Kiln's B).
//
// A plan (matmul descriptor, three layouts and the algorithm cuBLASLt's heuristic
// picks) is built once per (M, N, K, transposes, dtype, accumulate, pointer
// alignments) and reused: nothing is created per call (llm.c's per-call setup is the
// counter-example). Compute is CUBLAS_COMPUTE_32F: fp32 accumulation, and for fp32
// operands no TF32 (the fp32 path must stay an fp32 GEMM). The heuristic is told the
// real pointer alignments (views into the flat parameter buffer can be 4- or 2-byte
// aligned); when it offers no algorithm (odd leading dimensions with bf16), the plan
// falls back to cublasGemmEx, which accepts every layout.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>
#include <unordered_map>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_layout.h"
#include "core/error.h"

namespace kiln {
namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // what cuBLAS asks for on Hopper

void blas_check(cublasStatus_t status, const char* call) {
  if (status != CUBLAS_STATUS_SUCCESS)
    fail_runtime("cuda matmul", std::string(call) + " failed: " + cublasGetStatusName(status) +
                                    " (" + cublasGetStatusString(status) + ")");
}
#define KILN_BLAS(call) blas_check((call), #call)

struct PlanKey {
  int64_t M, N, K;
  uint8_t flags;                       // bit 0 trans_a, bit 1 trans_b, bit 2 accumulate, bit 3 bf16
  uint16_t align_a, align_b, align_c;  // bytes, powers of two up to 256
  bool operator==(const PlanKey& o) const {
    return M == o.M && N == o.N && K == o.K && flags == o.flags && align_a == o.align_a &&
           align_b == o.align_b && align_c == o.align_c;
  }
};

struct PlanKeyHash {
  size_t operator()(const PlanKey& key) const {
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (uint64_t v : {uint64_t(key.M), uint64_t(key.N), uint64_t(key.K),
                       uint64_t(key.flags) | uint64_t(key.align_a) << 8 |
                           uint64_t(key.align_b) << 24 | uint64_t(key.align_c) << 40})
      h = (h ^ v) * 0xbf58476d1ce4e5b9ull, h ^= h >> 31;
    return size_t(h);
  }
};

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t layout_a = nullptr, layout_b = nullptr, layout_c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool use_lt = false;  // false: cublasGemmEx fallback
};

uint16_t alignment_of(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint16_t a = 1;
  while (a < 256 && (address & a) == 0) a = uint16_t(a * 2);
  return a;
}

}  // namespace

struct CudaGemmCache {
  cudaStream_t stream = nullptr;
  cublasLtHandle_t lt = nullptr;
  cublasHandle_t blas = nullptr;
  void* workspace = nullptr;
  std::unordered_map<PlanKey, Plan, PlanKeyHash> plans;
  int64_t created = 0;

  ~CudaGemmCache() {
    for (auto& [key, plan] : plans) {
      if (plan.layout_a) cublasLtMatrixLayoutDestroy(plan.layout_a);
      if (plan.layout_b) cublasLtMatrixLayoutDestroy(plan.layout_b);
      if (plan.layout_c) cublasLtMatrixLayoutDestroy(plan.layout_c);
      if (plan.desc) cublasLtMatmulDescDestroy(plan.desc);
    }
    if (blas) cublasDestroy(blas);
    if (lt) cublasLtDestroy(lt);
    if (workspace) cudaFree(workspace);
  }

  const Plan& get(const PlanKey& key);
};

CudaGemmCache* create_cuda_gemm_cache(CUstream_st* stream) {
  auto cache = new CudaGemmCache;
  try {
    cache->stream = stream;
    KILN_BLAS(cublasLtCreate(&cache->lt));
    KILN_BLAS(cublasCreate(&cache->blas));
    KILN_BLAS(cublasSetStream(cache->blas, stream));
    KILN_CUDA(cudaMalloc(&cache->workspace, kWorkspaceBytes), "cuda matmul workspace");
    // Both libraries share the workspace: their calls are ordered on the one stream.
    KILN_BLAS(cublasSetWorkspace(cache->blas, cache->workspace, kWorkspaceBytes));
    KILN_BLAS(cublasSetMathMode(cache->blas, CUBLAS_DEFAULT_MATH));  // no TF32
  } catch (...) {
    delete cache;
    throw;
  }
  return cache;
}

void CudaGemmCacheDeleter::operator()(CudaGemmCache* cache) const { delete cache; }

int64_t CudaBackend::gemm_plans_created() const { return gemm_->created; }

const Plan& CudaGemmCache::get(const PlanKey& key) {
  auto found = plans.find(key);
  if (found != plans.end()) return found->second;

  const ColumnMajorGemm g =
      column_major_gemm(key.M, key.N, key.K, (key.flags & 1) != 0, (key.flags & 2) != 0);
  const cudaDataType_t operand = (key.flags & 8) ? CUDA_R_16BF : CUDA_R_32F;
  Plan plan;
  const cublasOperation_t op_a = g.first.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;   // Kiln's B
  const cublasOperation_t op_b = g.second.transpose ? CUBLAS_OP_T : CUBLAS_OP_N;  // Kiln's A
  KILN_BLAS(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  KILN_BLAS(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  KILN_BLAS(
      cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  KILN_BLAS(cublasLtMatrixLayoutCreate(&plan.layout_a, operand, uint64_t(g.first.rows),
                                       uint64_t(g.first.cols), g.first.ld));
  KILN_BLAS(cublasLtMatrixLayoutCreate(&plan.layout_b, operand, uint64_t(g.second.rows),
                                       uint64_t(g.second.cols), g.second.ld));
  KILN_BLAS(
      cublasLtMatrixLayoutCreate(&plan.layout_c, CUDA_R_32F, uint64_t(g.m), uint64_t(g.n), g.ldc));

  cublasLtMatmulPreference_t pref = nullptr;
  KILN_BLAS(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t workspace_bytes = kWorkspaceBytes;
  // cuBLAS A is Kiln's B and vice versa; C and D are the same buffer.
  const uint32_t align_a = key.align_b, align_b = key.align_a, align_c = key.align_c;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                       &workspace_bytes, sizeof(workspace_bytes));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                       sizeof(align_a));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                       sizeof(align_b));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                       sizeof(align_c));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                       sizeof(align_c));
  cublasLtMatmulHeuristicResult_t result{};
  int returned = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(lt, plan.desc, plan.layout_a, plan.layout_b, plan.layout_c,
                                     plan.layout_c, pref, 1, &result, &returned);
  cublasLtMatmulPreferenceDestroy(pref);
  if (status == CUBLAS_STATUS_SUCCESS && returned > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
    plan.algo = result.algo;
    plan.use_lt = true;
  }
  ++created;
  return plans.emplace(key, plan).first->second;
}

// C[M, N] (= or +=) op(A)[M, K] op(B)[K, N]; see backend.h and the mapping above.
void CudaBackend::matmul(float* C, const void* A, const void* B, DType dtype, int64_t M, int64_t N,
                         int64_t K, bool trans_a, bool trans_b, bool accumulate) {
  if (M < 0 || N < 0 || K < 0)
    fail_input("matmul", "negative dimension", "M, N, K >= 0",
               std::to_string(M) + ", " + std::to_string(N) + ", " + std::to_string(K));
  for (auto [a, b, what] : {std::tuple{M, K, "A"}, std::tuple{K, N, "B"}, std::tuple{M, N, "C"}}) {
    int64_t p;
    if (__builtin_mul_overflow(a, b, &p) || p > (int64_t(1) << 60))
      fail_input("matmul", std::string(what) + " has too many elements", "at most 2^60",
                 std::to_string(a) + " x " + std::to_string(b));
  }
  if (M == 0 || N == 0) return;
  if (K == 0) {  // an empty sum: C = 0, or C unchanged when accumulating
    if (!accumulate) zero(C, size_t(M * N) * sizeof(float));
    return;
  }
  const PlanKey key{M,
                    N,
                    K,
                    uint8_t((trans_a ? 1 : 0) | (trans_b ? 2 : 0) | (accumulate ? 4 : 0) |
                            (dtype == DType::bf16 ? 8 : 0)),
                    alignment_of(A),
                    alignment_of(B),
                    alignment_of(C)};
  CudaGemmCache& cache = *gemm_;
  const Plan& plan = cache.get(key);
  const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  if (plan.use_lt) {
    KILN_BLAS(cublasLtMatmul(cache.lt, plan.desc, &alpha, B, plan.layout_a, A, plan.layout_b, &beta,
                             C, plan.layout_c, C, plan.layout_c, &plan.algo, cache.workspace,
                             kWorkspaceBytes, stream_));
    return;
  }
  const cudaDataType_t operand = dtype == DType::bf16 ? CUDA_R_16BF : CUDA_R_32F;
  const ColumnMajorGemm g = column_major_gemm(M, N, K, trans_a, trans_b);
  KILN_BLAS(cublasGemmEx_64(cache.blas, g.first.transpose ? CUBLAS_OP_T : CUBLAS_OP_N,
                            g.second.transpose ? CUBLAS_OP_T : CUBLAS_OP_N, g.m, g.n, g.k, &alpha,
                            B, operand, g.first.ld, A, operand, g.second.ld, &beta, C, CUDA_R_32F,
                            g.ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace kiln
