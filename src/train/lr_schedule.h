// Learning-rate schedule: linear warmup, lr * (step + 1) / warmup for the first
// `warmup` steps (the first update already moves; the last warmup step is at lr),
// then cosine decay from lr to min_lr_frac * lr at the last step (constant with
// warmup 0 and min_lr_frac 1).
#pragma once
#include <cstdint>

namespace kiln {

struct LrSchedule {
  double lr = 5e-4;
  int64_t warmup = 0;
  int64_t total_steps = 1;
  double min_lr_frac = 0.1;

  // step is 0-based: the LR used for the update that makes step+1 steps taken.
  double at(int64_t step) const;
};

}  // namespace kiln
