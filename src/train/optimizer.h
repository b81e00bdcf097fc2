// AdamW over the flat parameter buffer, as torch.optim.AdamW with weight decay on
// matrices only (norm weights are not decayed, as llama2.c's train.py groups them),
// and torch.nn.utils.clip_grad_norm_ folded into the same pass.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/param_layout.h"

namespace kiln {

struct OptimizerConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
  float clip = 1.0f;  // max grad norm; 0 = no clipping
};

// One run of adjacent parameters sharing a weight-decay flag.
struct DecaySegment {
  int64_t offset = 0, count = 0;
  bool decay = false;
};
std::vector<DecaySegment> decay_segments(const ParamLayout& layout);

class AdamW {
 public:
  AdamW(Backend& backend, const ParamLayout& layout, const OptimizerConfig& config);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // The global grad norm goes to backend memory first, then every segment is
  // updated; params_compute (nullable) receives the new compute copy.
  // Non-finite guard: when the grad norm is NaN/Inf nothing is updated, the step
  // is not counted (bias correction continues as if it never happened) and
  // false is returned. Reading the norm is the one host wait of a step.
  bool step(float* params, void* params_compute, DType compute_dtype, const float* grads,
            float lr);
  // The norm of the last step's gradients, before clipping (reads backend memory).
  float last_grad_norm() const;

  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t step) { step_ = step; }
  float* m() { return m_; }  // [layout.total()] first moment
  float* v() { return v_; }  // [layout.total()] second moment
  int64_t size() const { return n_; }

 private:
  Backend& backend_;
  OptimizerConfig config_;
  std::vector<DecaySegment> segments_;
  int64_t n_ = 0, step_ = 0;
  float* m_ = nullptr;
  float* v_ = nullptr;
  float* norm_ = nullptr;  // [1] backend memory
};

}  // namespace kiln
