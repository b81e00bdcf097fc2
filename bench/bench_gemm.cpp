// GEMM kernels of the CPU backend at Stories110M shapes (dim 768, hidden 2048,
// 1024 token rows): C[M, N] = A[M, K] B[N, K]^T, the linear-layer form.
// Reports achieved FLOP/s. Keep runs short: `--benchmark_min_time=0.2`.
#include <benchmark/benchmark.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/int8_weights.h"
#include "core/rng.h"

namespace {

void BM_Matmul(benchmark::State& state, kiln::DType dtype) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  if (dtype == kiln::DType::bf16 && kiln::active_isa() != kiln::Isa::avx512) {
    state.SkipWithError("bf16 GEMM needs AVX-512");
    return;
  }
  kiln::CpuBackend backend;
  kiln::Rng rng(1, 2);
  std::vector<float> a(size_t(M * K)), b(size_t(N * K));
  for (auto& v : a) v = rng.uniform() - 0.5f;
  for (auto& v : b) v = rng.uniform() - 0.5f;
  const size_t elem = kiln::dtype_size(dtype);
  void* A = backend.alloc(a.size() * elem);
  void* B = backend.alloc(b.size() * elem);
  float* C = static_cast<float*>(backend.alloc(size_t(M * N) * sizeof(float)));
  backend.cast(A, dtype, a.data(), int64_t(a.size()));
  backend.cast(B, dtype, b.data(), int64_t(b.size()));
  backend.matmul(C, A, B, dtype, M, N, K, false, true, false);  // creates the primitive
  for (auto _ : state) {
    backend.matmul(C, A, B, dtype, M, N, K, false, true, false);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * double(M) * double(N) * double(K),
                                               benchmark::Counter::kIsIterationInvariantRate);
  // Weight bytes streamed per second: what bounds a decode step (M of a few rows).
  state.counters["W_bytes/s"] = benchmark::Counter(double(N) * double(K) * double(elem),
                                                   benchmark::Counter::kIsIterationInvariantRate);
  backend.release(A);
  backend.release(B);
  backend.release(C);
}

// {M, N, K}: fused QKV projection, attention output, FFN gate|up (one half), FFN down.
void Shapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 2304, 768})
      ->Args({1024, 768, 768})
      ->Args({1024, 4096, 768})
      ->Args({1024, 768, 2048});
  b->Unit(benchmark::kMillisecond)->MinTime(0.2)->UseRealTime();
}

// Int8 linear layers (W8A8) at the same shapes: y = x W^T with W quantized once.
void BM_LinearInt8(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(1), K = state.range(2);
  kiln::CpuBackend backend;
  kiln::Rng rng(1, 2);
  std::vector<float> x(size_t(M * K)), w(size_t(N * K)), y(size_t(M * N));
  for (auto& v : x) v = rng.uniform() - 0.5f;
  for (auto& v : w) v = rng.uniform() - 0.5f;
  std::vector<uint8_t> q(kiln::int8_q_bytes(N, K));
  std::vector<float> s(kiln::int8_scale_bytes(N, K) / sizeof(float));
  kiln::quantize_int8_weights(q.data(), s.data(), w.data(), N, K);
  for (auto _ : state) {
    backend.linear_int8(y.data(), x.data(), q.data(), s.data(), M, N, K, false);
    benchmark::ClobberMemory();
  }
  state.counters["FLOPS"] = benchmark::Counter(2.0 * double(M) * double(N) * double(K),
                                               benchmark::Counter::kIsIterationInvariantRate);
  state.counters["W_bytes/s"] = benchmark::Counter(double(q.size() + s.size() * 4),
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

// Decode steps (M = 1 and 4 sequences): the few-row kernel, bound by W_bytes/s.
void DecodeShapes(benchmark::internal::Benchmark* b) {
  for (const int64_t m : {1, 4})
    b->Args({m, 2304, 768})->Args({m, 4096, 768})->Args({m, 768, 2048})->Args({m, 32000, 768});
  b->Unit(benchmark::kMicrosecond)->MinTime(0.2)->UseRealTime();
}

BENCHMARK_CAPTURE(BM_Matmul, fp32, kiln::DType::f32)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Matmul, bf16, kiln::DType::bf16)->Apply(Shapes);
BENCHMARK_CAPTURE(BM_Matmul, decode_fp32, kiln::DType::f32)->Apply(DecodeShapes);
BENCHMARK_CAPTURE(BM_Matmul, decode_bf16, kiln::DType::bf16)->Apply(DecodeShapes);
BENCHMARK(BM_LinearInt8)->Apply(DecodeShapes)->Args({256, 4096, 768});

}  // namespace
