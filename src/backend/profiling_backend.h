// A Backend that forwards every op to another and times it (synchronising
// after each op, so GPU times are real). `kiln bench --profile` prints the table:
// where a step's time goes, op by op, with GEMMs split by role.
#pragma once
#include <map>
#include <string>

#include "backend/backend.h"

namespace kiln {

class ProfilingBackend final : public Backend {
 public:
  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
    double flops = 0;
  };
  const std::map<std::string, Entry>& entries() const { return entries_; }
  void reset() { entries_.clear(); }
  std::string table() const;  // human-readable, sorted by time

  std::string name() const override { return inner_.name(); }
  DType compute_dtype() const override { return inner_.compute_dtype(); }
  BackendCaps caps() const override { return inner_.caps(); }
  void* alloc(size_t bytes) override { return inner_.alloc(bytes); }
  void release(void* ptr) override { inner_.release(ptr); }
  void upload(void* dst, const void* src, size_t bytes) override;
  void download(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void zero(void* dst, size_t bytes) override;
  void synchronize() override { inner_.synchronize(); }
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
  template <typename F>
  void timed(const std::string& op, double flops, F&& f);
  Backend& inner_;
  std::map<std::string, Entry> entries_;
};

}  // namespace kiln
