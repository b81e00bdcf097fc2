// kiln train: the training loop, its logs, checkpoints and the efficiency report.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/train_options.h"

namespace kiln {

// Validates every option and input file, then trains. Throws InputError for
// bad input before anything is written to --out. Returns the exit code.
int run_training(TrainOptions options);

// Asked to stop (SIGINT/SIGTERM) by the handlers run_training installs.
bool stop_requested();

}  // namespace kiln
