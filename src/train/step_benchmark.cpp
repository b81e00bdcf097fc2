#include "train/step_benchmark.h"

#include <algorithm>
#include <vector>

#include "backend/profiling_backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "nn/model_step.h"
#include "train/optimizer.h"

namespace kiln {

StepBenchResult run_step_benchmark(Backend& device, const ModelConfig& config,
                                   const StepBenchOptions& options, double peak_tflops) {
  if (options.steps <= 0)
    fail_input("--steps", "must be positive", "> 0", std::to_string(options.steps));
  Timer plan_timer;
  ProfilingBackend profiler(device);
  Backend& backend = options.profile ? static_cast<Backend&>(profiler) : device;
  const DType dt = backend.compute_dtype();

  ModelStep step(backend, config, options.batch, options.seq);
  const ParamLayout& layout = step.layout();
  const int64_t P = layout.total();
  std::vector<float> host(P);
  init_params(config, layout, options.seed, host.data());
  float* params = static_cast<float*>(backend.alloc(P * sizeof(float)));
  float* grads = static_cast<float*>(backend.alloc(P * sizeof(float)));
  backend.upload(params, host.data(), P * sizeof(float));
  void* compute = params;
  if (dt != DType::f32) {
    compute = backend.alloc(P * dtype_size(dt));
    backend.cast(compute, dt, params, P);
  }
  OptimizerConfig opt;
  AdamW adamw(backend, layout, opt);

  // Synthetic tokens: a fixed random batch (the step's cost does not depend on the ids).
  const int64_t N = int64_t(options.batch) * options.seq;
  std::vector<int32_t> tokens(N), targets(N);
  Rng rng(options.seed, 99);
  for (int64_t i = 0; i < N; ++i) tokens[i] = int32_t(rng.below(config.vocab_size));
  for (int64_t i = 0; i < N; ++i) targets[i] = int32_t(rng.below(config.vocab_size));

  StepBenchResult result;
  auto one_step = [&]() {
    backend.zero(grads, P * sizeof(float));
    result.final_loss =
        step.forward_backward({params, compute}, grads, tokens.data(), targets.data());
    adamw.step(params, dt != DType::f32 ? compute : nullptr, dt, grads, 1e-4f);
    backend.synchronize();
  };
  for (int i = 0; i < options.warmup; ++i) one_step();
  result.plan_s = plan_timer.seconds();
  profiler.reset();

  std::vector<double> ms;
  for (int i = 0; i < options.steps; ++i) {
    Timer t;
    one_step();
    ms.push_back(t.ms());
  }
  std::sort(ms.begin(), ms.end());
  result.backend = backend.name();
  result.dtype = dtype_name(dt);
  result.ms_per_step = ms[ms.size() / 2];
  result.ms_min = ms.front();
  result.ms_max = ms.back();
  result.tok_s = double(N) / (result.ms_per_step / 1e3);
  result.tflops = config.train_flops_per_token(options.seq) * result.tok_s / 1e12;
  result.peak_tflops = peak_tflops;
  result.mfu = peak_tflops > 0 ? result.tflops / peak_tflops : 0;
  result.activation_bytes = step.activation_bytes();
  if (options.profile) result.profile_table = profiler.table();

  backend.release(params);
  backend.release(grads);
  if (compute != params) backend.release(compute);
  return result;
}

}  // namespace kiln
