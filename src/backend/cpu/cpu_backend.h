// The CPU backend: oneDNN matmul primitives for GEMMs (fp32, or bf16 with fp32
// accumulation on AMX / AVX512_BF16), Kiln's own OpenMP + SIMD kernels for the
// rest, dispatched at run time to scalar / AVX2 / AVX-512 code (core/cpu_features.h).
//
// The op implementations live one family per file:
//   cpu_backend.cpp     memory, construction, name
//   gemm_onednn.cpp     matmul (primitive cache), cast
//   classifier.cpp      fused classifier + cross-entropy
//   attention.cpp       causal GQA attention forward / backward
//   elementwise ops     embedding, rmsnorm, rope, swiglu, add, global_norm, adamw
//   qwen_ops.cpp        q/k/v bias (Qwen2), per-head q/k RMSNorm (Qwen3)
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"
#include "backend/backend_factory.h"
#include "core/cpu_features.h"

namespace kiln {

// auto -> bf16 where bf16 GEMMs run natively here, else fp32. Throws InputError
// when bf16 is asked for on a CPU without AVX-512 (where oneDNN has no bf16 GEMM).
DType resolve_cpu_dtype(DTypeChoice choice);

struct CpuBackendOptions {
  DType compute_dtype = DType::f32;
  int threads = 0;  // 0 = OpenMP's default
};

struct GemmCache;  // oneDNN engine, stream and primitives, one per shape (gemm_onednn.cpp)
GemmCache* create_gemm_cache();  // gemm_onednn.cpp
struct GemmCacheDeleter {
  void operator()(GemmCache* cache) const;  // gemm_onednn.cpp
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const CpuBackendOptions& options = {});
  ~CpuBackend() override;

  std::string name() const override;
  DType compute_dtype() const override { return options_.compute_dtype; }
  BackendCaps caps() const override;
  int threads() const;

  void* alloc(size_t bytes) override;
  void release(void* ptr) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;

  void matmul(float* C, const void* A, const void* B, DType dtype, int64_t M, int64_t N, int64_t K,
              bool trans_a, bool trans_b, bool accumulate) override;
  void linear_int8(float* y, const float* x, const uint8_t* wq, const float* ws, int64_t M,
                   int64_t N, int64_t K, bool accumulate) override;
  void cast(void* dst, DType dst_dtype, const float* src, int64_t n) override;
  void add(float* out, const float* a, const float* b, int64_t n) override;

  void embedding_forward(float* out, const int32_t* tokens, const float* table, int64_t N,
                         int C) override;
  void embedding_backward(float* dtable, const int32_t* tokens, const float* dout, int64_t N,
                          int C) override;
  void rmsnorm_forward(void* out, DType out_dtype, float* rstd, const float* x, const float* weight,
                       int64_t N, int C, float eps) override;
  void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x,
                        const float* weight, const float* rstd, int64_t N, int C) override;
  void bias_forward(float* y, const float* bias, int64_t N, int C) override;
  void bias_backward(float* dbias, const float* dy, int64_t N, int C) override;
  void head_rmsnorm_forward(float* out, float* rstd, const float* qkv, const float* q_weight,
                            const float* k_weight, int64_t N, int H, int Hkv, int D,
                            float eps) override;
  void head_rmsnorm_backward(float* dqkv, float* dq_weight, float* dk_weight, const float* qkv,
                             const float* q_weight, const float* k_weight, const float* rstd,
                             int64_t N, int H, int Hkv, int D) override;
  void rope_forward(float* qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                    int pos0) override;
  void rope_backward(float* dqkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                     int pos0) override;
  void rope_forward_at(float* qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                       const int32_t* pos, int max_len) override;
  void attention_decode(float* out, float* k_cache, float* v_cache, const float* qkv, int B, int T,
                        int H, int Hkv, int D, const int32_t* pos, int max_len) override;
  void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int H, int Hkv,
                         int D) override;
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* out,
                          const float* lse, int B, int T, int H, int Hkv, int D) override;
  void swiglu_forward(void* out, DType out_dtype, const float* h13, int64_t N, int F) override;
  void swiglu_backward(float* dh13, const float* dout, const float* h13, int64_t N, int F) override;
  void classifier_forward_backward(float* losses, float* dx, float* dW, const void* x,
                                   const void* W, DType dtype, const int32_t* targets, int64_t N,
                                   int C, int V, float dloss) override;
  void global_norm(float* out, const float* g, int64_t n) override;
  void adamw(float* params, void* params_compute, DType compute_dtype, const float* grads, float* m,
             float* v, int64_t n, const AdamWHyper& hyper, const float* grad_norm) override;

 private:
  CpuBackendOptions options_;
  std::unique_ptr<GemmCache, GemmCacheDeleter> gemm_;
  // linear_int8's quantized activations; grows to the largest call's size.
  void* int8_workspace_ = nullptr;
  size_t int8_workspace_bytes_ = 0;
};

}  // namespace kiln
