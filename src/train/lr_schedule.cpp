#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace kiln {

double LrSchedule::at(int64_t step) const {
  if (warmup > 0 && step < warmup) return lr * double(step + 1) / double(warmup);
  const double min_lr = lr * min_lr_frac;
  const int64_t decay_steps = total_steps - warmup;
  if (decay_steps <= 1) return lr;
  // progress 0 at the first post-warmup step, 1 at the last step.
  const double progress = std::clamp(double(step - warmup) / double(decay_steps - 1), 0.0, 1.0);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace kiln
