// Elementwise kernels at Stories110M shapes (B*T = 1024 rows, C = 768, F = 2048,
// AdamW over 110M parameters), per ISA variant: the first argument is the ISA cap
// (0 scalar, 1 avx2, 2 avx512); variants the CPU lacks are skipped. Bytes processed
// count each buffer read or written once, so the rate shows how close a kernel gets
// to memory bandwidth. Example:
//   build/bench/kiln_kernel_bench --benchmark_filter=Rmsnorm
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/cpu_features.h"
#include "core/rng.h"

namespace {

using kiln::DType;

constexpr int64_t kRows = 1024;  // B * T
constexpr int kDim = 768;        // C
constexpr int kHidden = 2048;    // F
constexpr int64_t kParams = 110'000'000;

std::vector<float> filled(int64_t n, uint64_t seed, float scale = 1.0f) {
  kiln::Rng rng(seed, 1);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = scale * (2.0f * rng.uniform() - 1.0f);
  return v;
}

kiln::CpuBackend& backend() {
  static kiln::CpuBackend be;
  return be;
}

// Caps the ISA for one benchmark and restores the cap of the environment (KILN_ISA)
// afterwards, so other benchmarks in this binary are unaffected. ok() is false (and
// the benchmark skipped) when the CPU lacks the ISA.
class IsaScope {
 public:
  explicit IsaScope(benchmark::State& state) {
    const auto isa = kiln::Isa(state.range(0));
    const kiln::CpuFeatures& f = kiln::cpu_features();
    if ((isa == kiln::Isa::avx2 && !f.avx2) || (isa == kiln::Isa::avx512 && !f.avx512)) {
      state.SkipWithError("this CPU lacks the ISA");
      return;
    }
    kiln::set_isa_cap(isa);
    state.SetLabel(kiln::isa_name(kiln::active_isa()));
    ok_ = true;
  }
  ~IsaScope() {
    kiln::Isa cap = kiln::Isa::avx512;
    const char* env = std::getenv("KILN_ISA");
    if (env && *env) kiln::parse_isa(env, &cap);
    kiln::set_isa_cap(cap);
  }
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
};

DType dtype_arg(benchmark::State& state) { return state.range(1) ? DType::bf16 : DType::f32; }

void BM_RmsnormForward(benchmark::State& state) {
  IsaScope isa(state);
  if (!isa.ok()) return;
  const DType dt = dtype_arg(state);
  const auto x = filled(kRows * kDim, 1), w = filled(kDim, 2);
  std::vector<float> out(kRows * kDim), rstd(kRows);
  for (auto _ : state) {
    backend().rmsnorm_forward(out.data(), dt, rstd.data(), x.data(), w.data(), kRows, kDim, 1e-5f);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kDim * (4 + kiln::dtype_size(dt)));
}

void BM_RmsnormBackward(benchmark::State& state) {
  IsaScope isa(state);
  if (!isa.ok()) return;
  const auto x = filled(kRows * kDim, 1), w = filled(kDim, 2), dout = filled(kRows * kDim, 3);
  const auto rstd = filled(kRows, 4);
  std::vector<float> dx(kRows * kDim, 0.0f), dw(kDim, 0.0f);
  for (auto _ : state) {
    backend().rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(),
                               kRows, kDim);
    benchmark::DoNotOptimize(dx.data());
  }
  // reads x, dout, dx; writes dx
  state.SetBytesProcessed(state.iterations() * kRows * kDim * 4 * 4);
}

void BM_SwigluForward(benchmark::State& state) {
  IsaScope isa(state);
  if (!isa.ok()) return;
  const DType dt = dtype_arg(state);
  const auto h13 = filled(kRows * 2 * kHidden, 5, 4.0f);
  std::vector<float> out(kRows * kHidden);
  for (auto _ : state) {
    backend().swiglu_forward(out.data(), dt, h13.data(), kRows, kHidden);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kHidden * (8 + kiln::dtype_size(dt)));
}

void BM_SwigluBackward(benchmark::State& state) {
  IsaScope isa(state);
  if (!isa.ok()) return;
  const auto h13 = filled(kRows * 2 * kHidden, 5, 4.0f), dout = filled(kRows * kHidden, 6);
  std::vector<float> dh13(kRows * 2 * kHidden);
  for (auto _ : state) {
    backend().swiglu_backward(dh13.data(), dout.data(), h13.data(), kRows, kHidden);
    benchmark::DoNotOptimize(dh13.data());
  }
  state.SetBytesProcessed(state.iterations() * kRows * kHidden * 4 * 5);
}

// One optimizer step over the whole model with the bf16 compute copy: reads p, g, m, v,
// writes p, m, v and the copy. The 2 GB of buffers are allocated once for all variants.
void BM_AdamW(benchmark::State& state) {
  IsaScope isa(state);
  if (!isa.ok()) return;
  static std::vector<float> p = filled(kParams, 7), g = filled(kParams, 8, 1e-2f);
  static std::vector<float> m(kParams, 0.0f), v(kParams, 0.0f);
  static std::vector<uint16_t> copy(kParams);
  kiln::AdamWHyper h;
  h.weight_decay = 0.1f;
  h.max_norm = 1.0f;
  float norm = 0;
  backend().global_norm(&norm, g.data(), kParams);
  for (auto _ : state) {
    backend().adamw(p.data(), copy.data(), DType::bf16, g.data(), m.data(), v.data(), kParams, h,
                    &norm);
    ++h.step;
    benchmark::DoNotOptimize(p.data());
  }
  state.SetBytesProcessed(state.iterations() * kParams * (4 * 7 + 2));
}

void BM_GlobalNorm(benchmark::State& state) {
  IsaScope isa(state);
  if (!isa.ok()) return;
  const auto g = filled(kParams / 4, 9);
  float norm = 0;
  for (auto _ : state) {
    backend().global_norm(&norm, g.data(), int64_t(g.size()));
    benchmark::DoNotOptimize(norm);
  }
  state.SetBytesProcessed(state.iterations() * int64_t(g.size()) * 4);
}

void isa_and_dtype(benchmark::internal::Benchmark* b) {
  for (int isa = 0; isa <= 2; ++isa)
    for (int bf16 = 0; bf16 <= 1; ++bf16) b->Args({isa, bf16});
}

BENCHMARK(BM_RmsnormForward)->Apply(isa_and_dtype)->MinTime(0.05)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_RmsnormBackward)->DenseRange(0, 2)->MinTime(0.05)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SwigluForward)->Apply(isa_and_dtype)->MinTime(0.05)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SwigluBackward)->DenseRange(0, 2)->MinTime(0.05)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_GlobalNorm)->DenseRange(0, 2)->MinTime(0.05)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AdamW)->DenseRange(0, 2)->Iterations(2)->Unit(benchmark::kMillisecond);

}  // namespace
