// Test fixtures around the fp64 model oracle: a RefModel built from Kiln's own
// seeded fp32 init (so a fast fp32 step and the oracle start from the very same
// numbers), random token batches, and a per-tensor comparison of a flat fp32
// buffer (params or grads) against the oracle's fp64 one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/config.h"
#include "reference/reference_model.h"

namespace kiln::ref {

// A tiny, valid config for oracle tests: dim 16, 2 layers, head_dim 4, hidden 24,
// vocab 11, max_seq_len 16. n_kv_heads must divide n_heads.
ModelConfig tiny_config(int n_heads = 4, int n_kv_heads = 2, bool tie_embeddings = false);

// Tiny Qwen-shaped configs on tiny_config's sizes. Qwen2: q/k/v biases, GQA 7:1
// (as Qwen2.5-0.5B's 14:2), H*D = 28 != dim 16, tied. Qwen3: q/k norms, head_dim 6
// (H*D = 24 != dim 16, as Qwen3's 16 x 128 != 1024), GQA 2:1, tied.
ModelConfig qwen2_tiny_config();
ModelConfig qwen3_tiny_config();
// Llama with llama3 rope_scaling on head_dim 8 (theta 1e4: f = 1, 0.1, 0.01, 0.001,
// wavelengths 6.3, 63, 628, 6283), factor 8, low 1, high 8, original context 100:
// f = 1 is kept (< 100/8), 0.1 interpolated, 0.01 and 0.001 divided by 8.
ModelConfig llama3_tiny_config();

// kiln::init_params(config, layout, seed) in fp32: the weights a Kiln run starts from.
std::vector<float> init_float_params(const ModelConfig& config, uint64_t seed);
// The same values widened to fp64 (exactly) in a RefModel.
RefModel ref_model_from_float(const ModelConfig& config, const std::vector<float>& params);
RefModel make_ref_model(const ModelConfig& config, uint64_t seed);

// tokens and targets [B*T], uniform ids in [0, V); each target is -1 (ignored)
// with probability ignore_fraction. Deterministic for a seed.
struct TokenBatch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;
};
TokenBatch random_batch(const ModelConfig& config, int B, int T, uint64_t seed,
                        double ignore_fraction = 0.0);

// One row per tensor of the layout: ||got - want|| / ||want|| (normalized_error) and ||want||.
struct TensorError {
  std::string name;
  double error = 0;
  double want_norm = 0;
};
std::vector<TensorError> per_tensor_errors(const ParamLayout& layout, const std::vector<float>& got,
                                           const std::vector<double>& want);

}  // namespace kiln::ref
