#include "train/optimizer.h"

#include <cmath>

namespace kiln {

std::vector<DecaySegment> decay_segments(const ParamLayout& layout) {
  std::vector<DecaySegment> segments;
  for (const ParamInfo& p : layout.params()) {
    if (!segments.empty() && segments.back().decay == p.decay &&
        segments.back().offset + segments.back().count == p.offset) {
      segments.back().count += p.numel();
    } else {
      segments.push_back({p.offset, p.numel(), p.decay});
    }
  }
  return segments;
}

AdamW::AdamW(Backend& backend, const ParamLayout& layout, const OptimizerConfig& config)
    : backend_(backend), config_(config), segments_(decay_segments(layout)), n_(layout.total()) {
  m_ = static_cast<float*>(backend_.alloc(n_ * sizeof(float)));
  v_ = static_cast<float*>(backend_.alloc(n_ * sizeof(float)));
  norm_ = static_cast<float*>(backend_.alloc(sizeof(float)));
  backend_.zero(m_, n_ * sizeof(float));
  backend_.zero(v_, n_ * sizeof(float));
  backend_.zero(norm_, sizeof(float));
}

AdamW::~AdamW() {
  backend_.release(m_);
  backend_.release(v_);
  backend_.release(norm_);
}

bool AdamW::step(float* params, void* params_compute, DType compute_dtype, const float* grads,
                 float lr) {
  backend_.global_norm(norm_, grads, n_);
  if (!std::isfinite(last_grad_norm())) return false;
  ++step_;
  AdamWHyper hyper;
  hyper.lr = lr;
  hyper.beta1 = config_.beta1;
  hyper.beta2 = config_.beta2;
  hyper.eps = config_.eps;
  hyper.step = step_;
  hyper.max_norm = config_.clip;
  const size_t csize = dtype_size(compute_dtype);
  for (const DecaySegment& s : segments_) {
    hyper.weight_decay = s.decay ? config_.weight_decay : 0.0f;
    void* compute = params_compute ? static_cast<char*>(params_compute) + s.offset * csize : nullptr;
    backend_.adamw(params + s.offset, compute, compute_dtype, grads + s.offset, m_ + s.offset,
                   v_ + s.offset, s.count, hyper, norm_);
  }
  return true;
}

float AdamW::last_grad_norm() const {
  float norm = 0;
  backend_.download(&norm, norm_, sizeof(float));
  return norm;
}

}  // namespace kiln
