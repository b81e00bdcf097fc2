// The CUDA backend: cuBLASLt GEMMs (bf16 or fp32 operands, fp32 accumulation, one
// cached plan per shape), Kiln's own kernels for everything else, all enqueued on
// one stream with no host synchronisation inside an op (only download() and
// synchronize() wait). Semantics of every op are those of backend.h, exactly.
//
// The op implementations live one family per file; each .cu file holds the op entry
// points and launch configurations, its *_kernels.cuh header the kernels (device code
// only, which tests/test_cuda_kernels_emulated.cpp also runs on the CPU):
//   cuda_backend.cpp       construction, memory, scratch, cuda_available, name, RoPE tables
//   cuda_graph.cpp         CUDA graph capture / replay, staged inputs
//   gemm_cublaslt.cpp      matmul (cuBLASLt plan cache; cublasGemmEx fallback)
//   elementwise.cu         cast, add, embedding forward, RoPE, SwiGLU
//   embedding_backward.cu  deterministic sort-based embedding gradient (CUB radix sort)
//   rmsnorm.cu             fused RMSNorm forward / backward
//   qwen_ops.cu            q/k/v bias (Qwen2), per-head q/k RMSNorm (Qwen3)
//   optimizer.cu           global_norm, fused AdamW
//   classifier.cu          fused, chunked classifier + cross-entropy
//   attention.cu           attention op entry points and kernel choice
//   attention_simt.cu      fp32 flash attention, any head_dim <= 256
//   attention_mma.cu       bf16 tensor-core flash attention, head_dim 64 and 128
//   cuda_factory.cpp       make_cuda_backend() (backend/cuda_factory.h)
//
// Graph capture. A training step whose every op runs on this backend can be
// recorded once and replayed (begin_capture / end_capture / replay). What a captured
// step must respect is spelled out in cuda_graph.cpp's header comment; in short:
// no download() inside it, host inputs enter through upload() (recorded as copies
// from pinned staging slots the caller refreshes before each replay with
// set_staged_input), AdamW's learning rate and step come from set_optimizer_step,
// and one un-captured step must run first so every grow-only buffer has its size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/backend.h"

// The CUDA runtime's opaque handle types, so this header needs no CUDA include.
struct CUstream_st;
struct CUgraph_st;
struct CUgraphExec_st;

namespace kiln {

// True when a CUDA device can be used; otherwise false and, when `why` is not null,
// the reason (no driver, no device, too old a device). Never throws, never aborts.
bool cuda_available(std::string* why);

enum class CudaAttentionKernel {
  auto_,  // tensor cores (bf16 mma) for bf16 compute and head_dim 64 / 128, else simt
  simt,   // fp32 flash attention on the CUDA cores, any head_dim <= 256
  mma,    // bf16 tensor cores; only head_dim 64 and 128 (InputError otherwise)
};

struct CudaBackendOptions {
  DType compute_dtype = DType::bf16;  // GEMM operands; bf16 is the CUDA default
  int device = 0;
  // The attention kernel; the environment variable KILN_CUDA_ATTENTION=simt|mma|auto
  // overrides it (for checking one path against the other on a GPU).
  CudaAttentionKernel attention = CudaAttentionKernel::auto_;
};

struct CudaGemmCache;  // cuBLASLt handle, workspace and plans (gemm_cublaslt.cpp)
CudaGemmCache* create_cuda_gemm_cache(CUstream_st* stream);
struct CudaGemmCacheDeleter {
  void operator()(CudaGemmCache* cache) const;
};

class CudaBackend final : public Backend {
 public:
  // Throws RuntimeError when no usable device is present (check cuda_available first).
  explicit CudaBackend(const CudaBackendOptions& options = {});
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;
  DType compute_dtype() const override { return options_.compute_dtype; }
  BackendCaps caps() const override {
    return {device_name_, "sm_" + std::to_string(cc_major_) + std::to_string(cc_minor_), false,
            true, 1};
  }

  void* alloc(size_t bytes) override;  // cudaMalloc: 256-byte aligned
  void release(void* ptr) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;  // waits
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;
  void synchronize() override;

  void matmul(float* C, const void* A, const void* B, DType dtype, int64_t M, int64_t N, int64_t K,
              bool trans_a, bool trans_b, bool accumulate) override;
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

  // --- CUDA graphs (cuda_graph.cpp) -------------------------------------------------
  // Records every op issued on this backend from now on into a graph instead of
  // running it. Fails if a capture is already open.
  void begin_capture();
  // Closes the capture and instantiates the graph (replacing any earlier one). The
  // recorded work has NOT run: call replay() to run it, the first time included.
  void end_capture();
  // Launches the instantiated graph on the backend's stream (asynchronous).
  void replay();
  bool capturing() const { return capturing_; }
  bool has_graph() const { return graph_exec_ != nullptr; }
  double capture_seconds() const { return capture_seconds_; }  // begin .. instantiated
  // upload() calls recorded in the graph, in call order: slot i was the i-th upload.
  int staged_input_count() const { return int(staged_.size()); }
  size_t staged_input_bytes(int slot) const;
  // Refreshes slot `slot` for the next replay (waits for the previous replay first).
  void set_staged_input(int slot, const void* host_src, size_t bytes);
  // AdamW's per-step values for the next replay (the captured adamw ops read them
  // from device memory, refreshed by the graph's first node).
  void set_optimizer_step(float lr, int64_t step);

  // --- introspection --------------------------------------------------------------
  CUstream_st* stream() const { return stream_; }
  int sm_count() const { return sm_count_; }
  const std::string& device_name() const { return device_name_; }
  CudaAttentionKernel attention_kernel() const { return attention_; }
  int64_t gemm_plans_created() const;  // cuBLASLt plans built so far (cache test)

 private:
  // Grow-only device scratch, one buffer per use; contents are not preserved across
  // growth. Growth is refused while capturing (run one step uncaptured first).
  enum ScratchSlot {
    kScratchNormPartials,
    kScratchRmsPartials,
    kScratchEmbedSort,
    kScratchLogits,
    kScratchDlogits,
    kScratchAttnDelta,
    kScratchSlots
  };
  void* scratch(ScratchSlot slot, size_t bytes);
  // The RoPE cos/sin table [positions, D/2] on the device for (D, theta), grown to
  // hold at least `positions` rows (an upload; refused while capturing).
  const float* rope_table(int D, const RopeParams& rope, int positions, const float** sin_table);
  void rope(const char* op, float* qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
            int pos0, bool inverse);
  // Launch-configuration helper: blocks for a grid-stride loop over n items.
  unsigned grid_for(int64_t n, int threads) const;
  void check_launch(const char* op) const;

  CudaBackendOptions options_;
  CudaAttentionKernel attention_ = CudaAttentionKernel::auto_;
  int device_ = 0;
  int sm_count_ = 1;
  int max_smem_optin_ = 48 * 1024;
  std::string device_name_;
  int cc_major_ = 0, cc_minor_ = 0;
  CUstream_st* stream_ = nullptr;
  std::unique_ptr<CudaGemmCache, CudaGemmCacheDeleter> gemm_;

  struct DeviceBuffer {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  DeviceBuffer scratch_[kScratchSlots];

  struct RopeTable {
    int positions = 0;
    float* cos = nullptr;  // [positions, D/2]
    float* sin = nullptr;
  };
  // (D, theta, llama3 factor, low, high, original context) -> table
  std::map<std::tuple<int, double, double, double, double, int>, RopeTable> rope_tables_;

  // Graph state (cuda_graph.cpp).
  struct StagedInput {
    void* pinned = nullptr;  // page-locked host copy the graph's memcpy node reads
    void* device = nullptr;  // destination the capture recorded
    size_t bytes = 0;
  };
  struct OptimizerStep {  // what the captured adamw ops read: host pinned + device copy
    double lr = 0;
    int64_t step = 1;
  };
  bool capturing_ = false;
  int capture_uploads_ = 0;  // uploads seen in the open capture
  bool capture_used_adamw_ = false;
  std::vector<StagedInput> staged_;
  OptimizerStep* step_pinned_ = nullptr;
  OptimizerStep* step_device_ = nullptr;
  CUgraph_st* graph_ = nullptr;
  CUgraphExec_st* graph_exec_ = nullptr;
  double capture_seconds_ = 0;
  double capture_started_ = 0;
  void release_graph();
  void wait_for_replay();  // before host writes into pinned staging
};

}  // namespace kiln
