// kiln bench: end-to-end training-step throughput (--model ...), sampling speed
// (--decode), or the machine's measured GEMM ceilings (--peak) that MFU is
// reported against.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "backend/backend_factory.h"
#include "backend/gemm_peak.h"
#include "backend/profiling_backend.h"
#include "cli/command.h"
#include "cli/generation_flags.h"
#include "core/error.h"
#include "core/rng.h"
#include "infer/generator.h"
#include "model/param_layout.h"
#include "train/model_source.h"
#include "train/step_benchmark.h"

namespace kiln::cli {
namespace {

struct BenchArgs {
  std::string model = "stories110M";
  std::string dtype = "auto";
  std::string weights = "auto";
  std::string device = "cpu";
  int batch = 4, seq = 256, steps = 5, warmup = 1, threads = 0;
  int decode_tokens = 256;
  bool peak = false, json = false, profile = false, decode = false;
};

BackendRequest backend_request(const BenchArgs& a) {
  BackendRequest request;
  if (!parse_device_kind(a.device, &request.device))
    fail_input("--device", "unknown device", "cpu or cuda", a.device);
  if (!parse_dtype_choice(a.dtype, &request.dtype))
    fail_input("--dtype", "unknown dtype", "auto, fp32 or bf16", a.dtype);
  request.threads = a.threads;
  return request;
}

int run_peak(const BenchArgs& a) {
  std::unique_ptr<Backend> backend = make_backend(backend_request(a));
  const BackendCaps caps = backend->caps();
  GemmPeak peak = measure_and_cache_gemm_peak(*backend, 8.0);
  nlohmann::json j = {{"device", caps.device},
                      {"kernels", caps.kernels},
                      {"threads", caps.threads},
                      {"fp32_tflops", peak.fp32_tflops},
                      {"bf16_tflops", peak.bf16_tflops}};
  if (!a.json) {
    std::printf("GEMM peak on %s (%s), %d threads (cached in %s)\n", caps.device.c_str(),
                caps.kernels.c_str(), caps.threads, gemm_peak_cache_path().c_str());
    std::printf("  fp32: %.3f TFLOPS\n  bf16: %.3f TFLOPS\n%s\n", peak.fp32_tflops,
                peak.bf16_tflops, peak.detail.c_str());
  }
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

// --decode: a --seq-token prompt prefilled in one pass, then --tokens greedy decode
// steps (the model's weights, or Kiln's seeded init for a preset: the values do not
// change the speed). Reports tokens/s of both.
int run_decode(const BenchArgs& a) {
  if (a.seq <= 0) fail_input("--seq", "must be positive", "> 0", std::to_string(a.seq));
  if (a.decode_tokens <= 0)
    fail_input("--tokens", "must be positive", "> 0", std::to_string(a.decode_tokens));
  ModelSource source = resolve_model(a.model);
  const ModelConfig& config = source.config;
  if (int64_t(a.seq) + a.decode_tokens > config.max_seq_len)
    fail_input("--seq", "prompt + decoded tokens exceed the model's max_seq_len",
               "<= " + std::to_string(config.max_seq_len),
               std::to_string(int64_t(a.seq) + a.decode_tokens));
  if (source.params.empty()) {
    ParamLayout layout(config);
    source.params.resize(size_t(layout.total()));
    init_params(config, layout, 1, source.params.data());
  }
  BackendRequest request = backend_request(a);
  const WeightFormat format = resolve_weight_format(a.weights, request);
  std::unique_ptr<Backend> device = make_backend(request);
  ProfilingBackend profiler(*device);  // --profile: every op timed (slower)
  Backend* backend = a.profile ? static_cast<Backend*>(&profiler) : device.get();
  LoadedGenerator loaded(*backend, config, source.params.data(), a.seq + a.decode_tokens, format);
  source.params = std::vector<float>();
  Rng rng(5);
  std::vector<int> prompt(size_t(a.seq));
  for (int& t : prompt) t = int(rng.below(uint64_t(config.vocab_size)));
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  GenerationStats best;
  for (int run = 0; run < std::max(1, a.warmup + a.steps); ++run) {
    const GenerationStats s =
        generate(loaded.generator(), prompt, a.decode_tokens, greedy, [](int) { return true; });
    if (run < a.warmup) {  // untimed
      profiler.reset();
      continue;
    }
    if (best.decode_s == 0 || s.decode_tokens_per_s() > best.decode_tokens_per_s()) best = s;
  }
  const nlohmann::json j = {{"model", config.name},
                            {"backend", backend->name()},
                            {"prompt_tokens", a.seq},
                            {"decode_tokens", best.generated_tokens},
                            {"prefill_tokens_per_s", best.prefill_tokens_per_s()},
                            {"decode_tokens_per_s", best.decode_tokens_per_s()},
                            {"weights", format == WeightFormat::int8 ? "int8"
                                        : dtype_name(backend->compute_dtype())},
                            {"weight_bytes", loaded.weights().bytes()},
                            {"gemm_weight_bytes", loaded.weights().gemm_weight_bytes()}};
  if (!a.json)
    std::printf("decode %s (%s weights) on %s: prefill %d tokens at %.1f tokens/s, decode %d "
                "tokens at %.1f tokens/s (best of %d)\n",
                config.name.c_str(), j["weights"].get<std::string>().c_str(),
                backend->name().c_str(), a.seq, best.prefill_tokens_per_s(),
                best.generated_tokens, best.decode_tokens_per_s(), std::max(1, a.steps));
  if (a.profile && !a.json)
    std::printf("per-op time over the timed runs (prefill and decode):\n%s", profiler.table().c_str());
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int run_bench(const BenchArgs& a) {
  if (a.peak) return run_peak(a);
  if (a.decode) return run_decode(a);
  if (a.batch <= 0) fail_input("--batch", "must be positive", "> 0", std::to_string(a.batch));
  if (a.seq <= 0) fail_input("--seq", "must be positive", "> 0", std::to_string(a.seq));
  ModelConfig config = resolve_config(a.model);
  StepBenchOptions o;
  o.batch = a.batch;
  o.seq = a.seq;
  o.steps = a.steps;
  o.warmup = a.warmup;
  o.profile = a.profile;
  std::unique_ptr<Backend> backend = make_backend(backend_request(a));
  const double peak = peak_for(gemm_peak(*backend, 4.0), backend->compute_dtype());
  StepBenchResult r = run_step_benchmark(*backend, config, o, peak);
  if (!a.json) {
    std::printf("kiln bench: %s, B=%d T=%d, %s (%s)\n", config.name.c_str(), a.batch, a.seq,
                r.backend.c_str(), r.dtype.c_str());
    std::printf("  plan + warm-up  %.2f s\n", r.plan_s);
    std::printf("  step            %.1f ms (min %.1f, max %.1f over %d steps)\n", r.ms_per_step,
                r.ms_min, r.ms_max, a.steps);
    std::printf("  tokens/s        %.0f\n", r.tok_s);
    std::printf("  achieved        %.3f TFLOPS", r.tflops);
    if (r.peak_tflops > 0)
      std::printf(", MFU %.1f%% of the measured %.3f TFLOPS %s GEMM peak\n", 100 * r.mfu,
                  r.peak_tflops, r.dtype.c_str());
    else
      std::printf(" (run `kiln bench --peak` once to report MFU)\n");
    std::printf("  activations     %.1f MB\n", r.activation_bytes / 1e6);
    if (a.profile) std::printf("per-op time over the timed steps:\n%s", r.profile_table.c_str());
  }
  nlohmann::json j = {{"model", config.name},
                      {"batch", a.batch},
                      {"seq", a.seq},
                      {"dtype", r.dtype},
                      {"backend", r.backend},
                      {"ms_per_step", r.ms_per_step},
                      {"tok_s", r.tok_s},
                      {"tflops", r.tflops},
                      {"peak_tflops", r.peak_tflops},
                      {"mfu", r.mfu},
                      {"plan_s", r.plan_s},
                      {"loss", r.final_loss},
                      {"activation_bytes", r.activation_bytes}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

RegisterCommand bench_command({"bench", "Benchmark a full training step, or measure the GEMM peak",
                               [](CLI::App& sub) -> std::function<int()> {
                                 auto a = std::make_shared<BenchArgs>();
                                 sub.add_option("--model", a->model, "Preset or config.json");
                                 sub.add_option("--batch", a->batch, "Batch size B");
                                 sub.add_option("--seq", a->seq, "Sequence length T");
                                 sub.add_option("--steps", a->steps, "Timed steps");
                                 sub.add_option("--warmup", a->warmup, "Untimed warm-up steps");
                                 sub.add_option("--dtype", a->dtype, "auto | fp32 | bf16");
                                 sub.add_option("--weights", a->weights,
                                                "--decode: auto (as --dtype) | fp32 | bf16 | int8");
                                 sub.add_option("--device", a->device, "cpu | cuda");
                                 sub.add_option("--threads", a->threads, "Threads (0 = all)");
                                 sub.add_flag("--peak", a->peak, "Measure the GEMM peak");
                                 sub.add_flag("--decode", a->decode,
                                              "Sampling speed: prefill a --seq prompt, then decode --tokens (best of --steps runs)");
                                 sub.add_option("--tokens", a->decode_tokens, "Decoded tokens (--decode)");
                                 sub.add_flag("--json", a->json, "Print only the JSON line");
                                 sub.add_flag("--profile", a->profile,
                                              "Time every op (slower; for finding hot spots)");
                                 return [a]() { return run_bench(*a); };
                               }});

}  // namespace
}  // namespace kiln::cli
