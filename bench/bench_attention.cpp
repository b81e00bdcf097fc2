// Causal GQA attention forward and backward on the CPU backend at the Stories110M
// training shape (B=4, T=256, H=12, D=64) and at its longest context (T=4096).
// Counters: GFLOP/s of the causal work (score and value GEMMs only: forward
// 2 GEMMs, backward 5, each 2 * D * T(T+1)/2 flops per head and sequence).
//   build/bench/kiln_kernel_bench --benchmark_filter=Attention
#include <benchmark/benchmark.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/rng.h"

namespace {

struct AttentionBuffers {
  int B, T, H, Hkv, D;
  std::vector<float> qkv, out, lse, dout, dqkv;
  AttentionBuffers(int B_, int T_, int H_, int Hkv_, int D_)
      : B(B_), T(T_), H(H_), Hkv(Hkv_), D(D_) {
    const size_t n_qkv = size_t(B) * T * (H + 2 * Hkv) * D, n_out = size_t(B) * T * H * D;
    kiln::Rng rng(1, 2);
    qkv.resize(n_qkv);
    dout.resize(n_out);
    for (float& x : qkv) x = float(2.0 * rng.uniform_double() - 1.0);
    for (float& x : dout) x = float(2.0 * rng.uniform_double() - 1.0);
    out.resize(n_out);
    lse.resize(size_t(B) * H * T);
    dqkv.resize(n_qkv);
  }
  double gemm_flops() const { return 2.0 * D * (double(T) * (T + 1) / 2) * B * H; }
};

void BM_AttentionForward(benchmark::State& state) {
  AttentionBuffers b(state.range(0), state.range(1), state.range(2), state.range(3),
                     state.range(4));
  kiln::CpuBackend backend;
  for (auto _ : state) {
    backend.attention_forward(b.out.data(), b.lse.data(), b.qkv.data(), b.B, b.T, b.H, b.Hkv, b.D);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2 * b.gemm_flops() * 1e-9 * state.iterations(),
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(backend.name());
}

void BM_AttentionBackward(benchmark::State& state) {
  AttentionBuffers b(state.range(0), state.range(1), state.range(2), state.range(3),
                     state.range(4));
  kiln::CpuBackend backend;
  backend.attention_forward(b.out.data(), b.lse.data(), b.qkv.data(), b.B, b.T, b.H, b.Hkv, b.D);
  for (auto _ : state) {
    backend.attention_backward(b.dqkv.data(), b.dout.data(), b.qkv.data(), b.out.data(),
                               b.lse.data(), b.B, b.T, b.H, b.Hkv, b.D);
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(5 * b.gemm_flops() * 1e-9 * state.iterations(),
                                                 benchmark::Counter::kIsRate);
  state.SetLabel(backend.name());
}

// {B, T, H, Hkv, D}
BENCHMARK(BM_AttentionForward)
    ->Args({1, 256, 1, 1, 64})
    ->Args({4, 256, 12, 12, 64})
    ->Args({1, 4096, 12, 12, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_AttentionBackward)
    ->Args({1, 256, 1, 1, 64})
    ->Args({4, 256, 12, 12, 64})
    ->Args({1, 4096, 12, 12, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
