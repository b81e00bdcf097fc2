// End-to-end step benchmark: a full training step (forward + backward + AdamW)
// on synthetic tokens, timed after warm-up. `kiln bench` prints it.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"
#include "model/config.h"

namespace kiln {

struct StepBenchOptions {
  int batch = 4, seq = 256, steps = 5, warmup = 1;
  uint64_t seed = 1;
  bool profile = false;  // time every op (adds a synchronisation per op)
};

struct StepBenchResult {
  std::string backend;
  std::string dtype;
  double plan_s = 0;       // building buffers, init, first primitive creation (warm-up steps)
  double ms_per_step = 0;  // median over timed steps
  double ms_min = 0, ms_max = 0;
  double tok_s = 0;
  double tflops = 0;       // achieved, from the model's FLOP count
  double peak_tflops = 0;  // measured GEMM peak for this dtype (0 if unknown)
  double mfu = 0;
  double final_loss = 0;
  size_t activation_bytes = 0;
  std::string profile_table;  // when profiling: per-op times of the timed steps
};

// Runs the benchmark on `backend` (made by make_backend for the options' device,
// dtype and threads); MFU is against peak_tflops (0 = unknown).
StepBenchResult run_step_benchmark(Backend& backend, const ModelConfig& config,
                                   const StepBenchOptions& options, double peak_tflops);

}  // namespace kiln
