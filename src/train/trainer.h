// kiln train: the training loop, its logs, checkpoints and the efficiency report.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/batch_source.h"

namespace kiln {

struct TrainOptions {
  std::string model = "stories260K";  // preset | config.json | model.bin | CKPT_DIR | RUN_DIR
  std::vector<std::string> data, val_data;
  std::string tokenizer;  // for --sample-every and recorded with checkpoints
  int batch = 8, seq = 256, accum = 1;
  int64_t steps = 100;
  double lr = 5e-4, min_lr_frac = 0.1;
  int64_t warmup = -1;  // -1: 5% of steps (at most 1000)
  double weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, clip = 1.0;
  std::string dtype = "auto", device = "cpu";
  int threads = 0;
  uint64_t seed = 1337;
  std::string sampling = "random";
  std::string out;  // default runs/<timestamp>
  int64_t ckpt_every = 0;
  int keep = 3;
  int64_t eval_every = 0;
  int eval_batches = 10;
  int64_t sample_every = 0;
  int sample_tokens = 64;
  std::string sample_prompt;  // empty: start from BOS alone
  bool resume = false;
  bool compact_vocab = false;
  bool quiet = false;  // no per-step progress lines
  // Non-finite guard: a step whose loss or grad norm is NaN/Inf is skipped; after
  // max_skips consecutive skips the run rolls back to its last checkpoint with the
  // LR scaled by rollback_lr_scale ("rollback"), or stops ("stop").
  int max_skips = 5;
  std::string on_nonfinite = "rollback";
  double rollback_lr_scale = 0.5;
  std::string on_ckpt_error = "stop";  // continue | stop
};

// Validates every option and input file, then trains. Throws InputError for
// bad input before anything is written to --out. Returns the exit code.
int run_training(TrainOptions options);

// Asked to stop (SIGINT/SIGTERM) by the handlers run_training installs.
bool stop_requested();

}  // namespace kiln
