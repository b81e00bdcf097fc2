// Decode and prefill speed of the KV-cache Generator (CPU backend; arg 0 = fp32,
// 1 = bf16 GEMMs) and the cost of one nucleus sample, on Stories-shaped models with Kiln's seeded init (the weights' values do not
// change the speed). Decoding reads every weight once per token, so besides
// tokens/s the benchmark reports the weight bytes streamed per second.
//   build/bench/kiln_kernel_bench --benchmark_filter=Generate --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/rng.h"
#include "infer/generator.h"
#include "infer/sampler.h"
#include "model/config.h"
#include "model/param_layout.h"

namespace {

// One token per iteration at positions 0, 1, ..., max_seq_len - 1, then again from
// 0, so the time averages attention over every cache length. Arg: the GEMM dtype.
template <int kPreset>
void BM_GenerateDecode(benchmark::State& state) {
  const char* preset = kPreset == 15 ? "stories15M" : "stories110M";
  kiln::ModelConfig config;
  kiln::find_preset(preset, &config);
  kiln::ParamLayout layout(config);
  std::vector<float> params(layout.total());
  kiln::init_params(config, layout, 1, params.data());
  kiln::CpuBackend backend({kiln::DType(state.range(0)), 0});
  kiln::LoadedGenerator loaded(backend, config, params.data(), config.max_seq_len);
  kiln::Generator& generator = loaded.generator();
  int pos = 0, token = 1;
  for (auto _ : state) {
    if (pos == config.max_seq_len) {
      generator.reset();
      pos = 0;
    }
    const float* logits = generator.forward(token, pos++);
    token = kiln::argmax(logits, config.vocab_size);
    benchmark::DoNotOptimize(token);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * int64_t(dtype_size(backend.compute_dtype())) *
                          layout.total());
}
BENCHMARK(BM_GenerateDecode<15>)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GenerateDecode<110>)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// One 256-token prompt prefilled in one batched pass per iteration (items: tokens).
template <int kPreset>
void BM_GeneratePrefill256(benchmark::State& state) {
  const char* preset = kPreset == 15 ? "stories15M" : "stories110M";
  kiln::ModelConfig config;
  kiln::find_preset(preset, &config);
  kiln::ParamLayout layout(config);
  std::vector<float> params(layout.total());
  kiln::init_params(config, layout, 1, params.data());
  kiln::CpuBackend backend({kiln::DType(state.range(0)), 0});
  kiln::LoadedGenerator loaded(backend, config, params.data(), config.max_seq_len);
  std::vector<int> prompt(256);
  kiln::Rng rng(5);
  for (int& t : prompt) t = int(rng.below(config.vocab_size));
  for (auto _ : state) {
    loaded.generator().reset();
    benchmark::DoNotOptimize(loaded.generator().prefill(prompt));
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK(BM_GeneratePrefill256<15>)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GeneratePrefill256<110>)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// softmax + nucleus (top_p 0.9) over a 32000-token vocabulary.
void BM_GenerateSampleTopP(benchmark::State& state) {
  const int V = 32000;
  std::vector<float> logits(V);
  kiln::Rng data(3);
  for (float& x : logits) x = 3.0f * data.normal();
  kiln::Rng rng(4);
  for (auto _ : state) benchmark::DoNotOptimize(kiln::sample_next(logits.data(), V, 1.0f, 0.9f, rng));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GenerateSampleTopP)->Unit(benchmark::kMicrosecond);

}  // namespace
