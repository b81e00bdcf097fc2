// CUDA backend kernels and a whole eager training step, for a machine with a GPU
// (every case reports "no CUDA device" and skips elsewhere; an empty file in a build
// without CUDA). Times are wall clock around a stream synchronisation per iteration.
//   build-gpu/bench/kiln_kernel_bench --benchmark_filter=Cuda
// Counters: TFLOP/s of the GEMM work; tok/s and TFLOP/s (model FLOPs, as `kiln bench`)
// for the step.
#ifdef KILN_HAVE_CUDA
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/param_layout.h"
#include "nn/model_step.h"
#include "train/optimizer.h"

namespace {

using namespace kiln;

// One bf16 backend for all cases, or null with the reason.
CudaBackend* backend_or_skip(benchmark::State& state,
                             CudaAttentionKernel attention = CudaAttentionKernel::auto_) {
  static std::string why;
  static const bool ok = cuda_available(&why);
  if (!ok) {
    state.SkipWithError(why.c_str());
    return nullptr;
  }
  static std::unique_ptr<CudaBackend> backends[3];
  auto& slot = backends[int(attention)];
  if (!slot) {
    CudaBackendOptions options;
    options.attention = attention;
    slot = std::make_unique<CudaBackend>(options);
  }
  return slot.get();
}

void* filled(CudaBackend& be, size_t count, DType dtype, uint64_t seed) {
  std::vector<float> host(count);
  Rng rng(seed, 5);
  for (float& x : host) x = float(2.0 * rng.uniform_double() - 1.0);
  float* f = static_cast<float*>(be.alloc(count * 4));
  be.upload(f, host.data(), count * 4);
  if (dtype == DType::f32) return f;
  void* b = be.alloc(count * 2);
  be.cast(b, DType::bf16, f, int64_t(count));
  be.synchronize();
  be.release(f);
  return b;
}

// {M, N, K, trans_a, trans_b}: bf16 operands, fp32 C (=).
void BM_CudaMatmulBf16(benchmark::State& state) {
  CudaBackend* be = backend_or_skip(state);
  if (!be) return;
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  const bool ta = state.range(3), tb = state.range(4);
  void* A = filled(*be, size_t(M * K), DType::bf16, 1);
  void* B = filled(*be, size_t(K * N), DType::bf16, 2);
  float* C = static_cast<float*>(be->alloc(size_t(M * N) * 4));
  be->matmul(C, A, B, DType::bf16, M, N, K, ta, tb, false);  // plan
  be->synchronize();
  for (auto _ : state) {
    be->matmul(C, A, B, DType::bf16, M, N, K, ta, tb, false);
    be->synchronize();
  }
  state.counters["TFLOP/s"] =
      benchmark::Counter(2.0 * M * N * K * 1e-12 * state.iterations(), benchmark::Counter::kIsRate);
  be->release(A);
  be->release(B);
  be->release(C);
}
// Stories110M at B=64, T=256 (N = 16384): qkv, W2 forward, a weight gradient; the
// classifier chunk; Qwen's W13 at B=16, T=512.
BENCHMARK(BM_CudaMatmulBf16)
    ->Args({16384, 2304, 768, 0, 1})
    ->Args({16384, 768, 2048, 0, 1})
    ->Args({768, 2048, 16384, 1, 0})
    ->Args({4096, 32000, 768, 0, 1})
    ->Args({8192, 9728, 896, 0, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// {B, T, H, Hkv, D, kernel (0 auto = tensor cores, 1 simt)}: forward + backward.
void BM_CudaAttention(benchmark::State& state) {
  const auto kernel = state.range(5) ? CudaAttentionKernel::simt : CudaAttentionKernel::auto_;
  CudaBackend* be = backend_or_skip(state, kernel);
  if (!be) return;
  const int B = int(state.range(0)), T = int(state.range(1)), H = int(state.range(2));
  const int Hkv = int(state.range(3)), D = int(state.range(4));
  const size_t n_qkv = size_t(B) * T * (H + 2 * Hkv) * D, n_out = size_t(B) * T * H * D;
  float* qkv = static_cast<float*>(filled(*be, n_qkv, DType::f32, 3));
  float* dout = static_cast<float*>(filled(*be, n_out, DType::f32, 4));
  float* out = static_cast<float*>(be->alloc(n_out * 4));
  float* lse = static_cast<float*>(be->alloc(size_t(B) * H * T * 4));
  float* dqkv = static_cast<float*>(be->alloc(n_qkv * 4));
  for (auto _ : state) {
    be->attention_forward(out, lse, qkv, B, T, H, Hkv, D);
    be->attention_backward(dqkv, dout, qkv, out, lse, B, T, H, Hkv, D);
    be->synchronize();
  }
  // Causal GEMM work: forward 2, backward 5 products of 2 D T(T+1)/2 flops per head.
  const double flops = 7.0 * 2.0 * D * (double(T) * (T + 1) / 2) * B * H;
  state.counters["TFLOP/s"] =
      benchmark::Counter(flops * 1e-12 * state.iterations(), benchmark::Counter::kIsRate);
  for (void* p : {static_cast<void*>(qkv), static_cast<void*>(dout), static_cast<void*>(out),
                  static_cast<void*>(lse), static_cast<void*>(dqkv)})
    be->release(p);
}
BENCHMARK(BM_CudaAttention)
    ->Args({64, 256, 12, 12, 64, 0})
    ->Args({64, 256, 12, 12, 64, 1})
    ->Args({16, 512, 14, 2, 64, 0})
    ->Args({4, 1024, 8, 8, 128, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// {preset (0 stories110M, 1 qwen2.5-0.5b), B, T}: zero grads, forward + backward
// (ModelStep downloads the per-row losses: one synchronisation), grad norm + AdamW.
void BM_CudaStep(benchmark::State& state) {
  CudaBackend* be = backend_or_skip(state);
  if (!be) return;
  ModelConfig config;
  find_preset(state.range(0) == 0 ? "stories110M" : "qwen2.5-0.5b", &config);
  const int B = int(state.range(1)), T = int(state.range(2));
  ModelStep step(*be, config, B, T);
  const int64_t P = step.layout().total();
  std::vector<float> host(static_cast<size_t>(P));
  init_params(config, step.layout(), 1, host.data());
  float* params = static_cast<float*>(be->alloc(size_t(P) * 4));
  be->upload(params, host.data(), size_t(P) * 4);
  void* compute = be->alloc(size_t(P) * 2);
  be->cast(compute, DType::bf16, params, P);
  float* grads = static_cast<float*>(be->alloc(size_t(P) * 4));
  AdamW adamw(*be, step.layout(), OptimizerConfig{});
  std::vector<int32_t> tokens(size_t(B) * T), targets(size_t(B) * T);
  Rng rng(9, 9);
  for (auto& t : tokens) t = int32_t(rng.below(uint64_t(config.vocab_size)));
  for (auto& t : targets) t = int32_t(rng.below(uint64_t(config.vocab_size)));
  auto one_step = [&] {
    be->zero(grads, size_t(P) * 4);
    step.forward_backward({params, compute}, grads, tokens.data(), targets.data());
    adamw.step(params, compute, DType::bf16, grads, 1e-4f);
    be->synchronize();
  };
  one_step();  // plans, scratch, tables
  for (auto _ : state) one_step();
  const double tokens_per_step = double(B) * T;
  state.counters["tok/s"] =
      benchmark::Counter(tokens_per_step * state.iterations(), benchmark::Counter::kIsRate);
  state.counters["TFLOP/s"] = benchmark::Counter(
      config.train_flops_per_token(T) * tokens_per_step * 1e-12 * state.iterations(),
      benchmark::Counter::kIsRate);
  state.counters["act_GB"] = double(step.activation_bytes()) * 1e-9;
  state.SetLabel(be->name());
  be->release(params);
  be->release(compute);
  be->release(grads);
}
BENCHMARK(BM_CudaStep)
    ->Args({0, 64, 256})
    ->Args({0, 128, 256})
    ->Args({0, 256, 256})
    ->Args({1, 16, 512})
    ->Args({1, 32, 512})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(2.0);

}  // namespace
#endif  // KILN_HAVE_CUDA
