#include "reference/model_fixture.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "reference/compare.h"

namespace kiln::ref {

ModelConfig tiny_config(int n_heads, int n_kv_heads, bool tie_embeddings) {
  ModelConfig c;
  c.name = "tiny-oracle";
  c.dim = 16;
  c.n_layers = 2;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = 4;
  c.hidden_dim = 24;
  c.vocab_size = 11;
  c.max_seq_len = 16;
  c.tie_embeddings = tie_embeddings;
  c.validate(c.name);
  return c;
}

ModelConfig qwen2_tiny_config() {
  ModelConfig c = tiny_config(7, 1, true);
  c.name = "tiny-qwen2";
  c.model_type = "qwen2";
  c.qkv_bias = true;
  c.norm_eps = 1e-6;
  c.rope_theta = 1e6;
  c.validate(c.name);
  return c;
}

ModelConfig qwen3_tiny_config() {
  ModelConfig c = tiny_config(4, 2, true);
  c.name = "tiny-qwen3";
  c.model_type = "qwen3";
  c.head_dim = 6;
  c.qk_norm = true;
  c.norm_eps = 1e-6;
  c.rope_theta = 1e6;
  c.validate(c.name);
  return c;
}

ModelConfig llama3_tiny_config() {
  ModelConfig c = tiny_config(4, 2, false);
  c.name = "tiny-llama3";
  c.head_dim = 8;
  c.rope_scaling = {8.0, 1.0, 8.0, 100};
  c.validate(c.name);
  return c;
}

std::vector<float> init_float_params(const ModelConfig& config, uint64_t seed) {
  ParamLayout layout(config);
  std::vector<float> params(layout.total());
  init_params(config, layout, seed, params.data());
  return params;
}

RefModel ref_model_from_float(const ModelConfig& config, const std::vector<float>& params) {
  RefModel m = make_zero_ref_model(config);
  if (params.size() != m.params.size())
    fail_input("ref_model_from_float", "params size", std::to_string(m.params.size()),
               std::to_string(params.size()));
  for (size_t i = 0; i < params.size(); ++i) m.params[i] = params[i];
  return m;
}

RefModel make_ref_model(const ModelConfig& config, uint64_t seed) {
  return ref_model_from_float(config, init_float_params(config, seed));
}

TokenBatch random_batch(const ModelConfig& config, int B, int T, uint64_t seed,
                        double ignore_fraction) {
  TokenBatch batch;
  batch.B = B;
  batch.T = T;
  Rng rng(seed, 11);
  const uint64_t V = uint64_t(config.vocab_size);
  for (int64_t i = 0; i < int64_t(B) * T; ++i) {
    batch.tokens.push_back(int32_t(rng.below(V)));
    const int32_t target = int32_t(rng.below(V));
    batch.targets.push_back(rng.uniform_double() < ignore_fraction ? -1 : target);
  }
  return batch;
}

std::vector<TensorError> per_tensor_errors(const ParamLayout& layout, const std::vector<float>& got,
                                           const std::vector<double>& want) {
  std::vector<TensorError> rows;
  for (const ParamInfo& p : layout.params()) {
    TensorError row;
    row.name = p.name;
    if (got.size() != size_t(layout.total()) || want.size() != size_t(layout.total())) {
      row.error = INFINITY;
      rows.push_back(row);
      continue;
    }
    std::vector<float> g(got.begin() + p.offset, got.begin() + p.offset + p.numel());
    std::vector<double> w(want.begin() + p.offset, want.begin() + p.offset + p.numel());
    row.error = normalized_error(g, w);
    double ss = 0;
    for (double x : w) ss += x * x;
    row.want_norm = std::sqrt(ss);
    rows.push_back(row);
  }
  return rows;
}

}  // namespace kiln::ref
