// The whole model step (forward + backward over backend.h on the CPU backend)
// against the fp64 oracle, and AdamW training behaviour.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "nn/model_step.h"
#include "reference/compare.h"
#include "reference/model_fixture.h"
#include "reference/reference_ops.h"
#include "train/optimizer.h"

using namespace kiln;

namespace {

struct StepResult {
  float loss = 0;
  std::vector<float> grads;
};

StepResult run_fast_step(const ModelConfig& config, const std::vector<float>& params, DType dtype,
                         const ref::TokenBatch& batch) {
  CpuBackendOptions options;
  options.compute_dtype = dtype;
  CpuBackend backend(options);
  ModelStep step(backend, config, batch.B, batch.T);
  const int64_t P = step.layout().total();
  std::vector<float> compute_f32 = params;
  std::vector<bf16> compute_bf16(P);
  for (int64_t i = 0; i < P; ++i) compute_bf16[i] = float_to_bf16(params[i]);
  const void* compute = dtype == DType::f32 ? static_cast<const void*>(params.data())
                                            : static_cast<const void*>(compute_bf16.data());
  StepResult r;
  r.grads.assign(P, 0.0f);
  r.loss = step.forward_backward({params.data(), compute}, r.grads.data(), batch.tokens.data(),
                                 batch.targets.data());
  return r;
}

struct Case {
  int H, Hkv;
  bool tied;
  int B, T;
};

void check_against_oracle(const Case& c, DType dtype, double loss_tol, double grad_tol) {
  ModelConfig config = ref::tiny_config(c.H, c.Hkv, c.tied);
  const std::vector<float> params = ref::init_float_params(config, 11);
  ref::RefModel model = ref::ref_model_from_float(config, params);
  ref::TokenBatch batch = ref::random_batch(config, c.B, c.T, 5, 0.2);
  std::vector<double> want_grads;
  const double want_loss =
      ref::ref_loss_and_grads(model, batch.tokens, batch.targets, c.B, c.T, &want_grads);
  StepResult got = run_fast_step(config, params, dtype, batch);
  const double loss_err = std::fabs(got.loss - want_loss) / std::fabs(want_loss);
  EXPECT_LE(loss_err, loss_tol) << "loss " << got.loss << " vs oracle " << want_loss;
  for (const auto& e : ref::per_tensor_errors(model.layout, got.grads, want_grads))
    EXPECT_LE(e.error, grad_tol) << e.name << " (|grad| = " << e.want_norm << ")";
}

bool bf16_available() { return active_isa() == Isa::avx512; }

}  // namespace

// fp32 path: <= 1e-5 relative on the loss, <= 1e-4 on every gradient tensor.
TEST(ModelStep, MatchesOracleFp32) {
  for (Case c : {Case{4, 2, false, 2, 7}, Case{4, 1, true, 1, 16}, Case{4, 4, false, 3, 1},
                 Case{4, 2, true, 2, 9}}) {
    SCOPED_TRACE("H=" + std::to_string(c.H) + " Hkv=" + std::to_string(c.Hkv) +
                 " T=" + std::to_string(c.T));
    check_against_oracle(c, DType::f32, 1e-5, 1e-4);
  }
}

// bf16 GEMM operands (fp32 accumulation): <= 2e-2 relative.
TEST(ModelStep, MatchesOracleBf16) {
  if (!bf16_available())
    GTEST_SKIP() << "bf16 GEMMs need AVX-512 (ISA here: " << isa_name(active_isa()) << ")";
  for (Case c : {Case{4, 2, false, 2, 7}, Case{4, 1, true, 2, 16}}) {
    SCOPED_TRACE("H=" + std::to_string(c.H) + " Hkv=" + std::to_string(c.Hkv));
    check_against_oracle(c, DType::bf16, 2e-2, 2e-2);
  }
}

namespace {

// `steps` optimizer steps (clip active, weight decay on matrices only) of the fast
// step + AdamW against the oracle's forward/backward + fp64 AdamW, from `params`.
void track_oracle_with_adamw(const ModelConfig& config, std::vector<float> params, int steps,
                             float lr = 1e-2f) {
  ref::RefModel model = ref::ref_model_from_float(config, params);
  ref::TokenBatch batch = ref::random_batch(config, 2, 8, 9, 0.0);
  CpuBackend backend;
  ModelStep step(backend, config, 2, 8);
  OptimizerConfig oc;
  oc.weight_decay = 0.1f;
  oc.clip = 0.05f;  // small, so clipping is active
  AdamW adamw(backend, step.layout(), oc);
  const int64_t P = step.layout().total();
  std::vector<float> grads(P);
  std::vector<double> m(P, 0.0), v(P, 0.0);
  const auto segments = decay_segments(step.layout());
  for (int s = 1; s <= steps; ++s) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    step.forward_backward({params.data(), params.data()}, grads.data(), batch.tokens.data(),
                          batch.targets.data());
    adamw.step(params.data(), nullptr, DType::f32, grads.data(), lr);

    std::vector<double> g;
    ref::ref_loss_and_grads(model, batch.tokens, batch.targets, 2, 8, &g);
    const double norm = ref::global_norm(g);
    EXPECT_NEAR(adamw.last_grad_norm(), norm, 1e-4 * norm) << "step " << s;
    for (const DecaySegment& seg : segments) {
      auto slice = [&](const std::vector<double>& x) {
        return std::vector<double>(x.begin() + seg.offset, x.begin() + seg.offset + seg.count);
      };
      std::vector<double> p = slice(model.params), gs = slice(g), ms = slice(m), vs = slice(v);
      ref::AdamWHyperRef h{lr,      oc.beta1, oc.beta2, oc.eps, seg.decay ? oc.weight_decay : 0.0,
                           oc.clip, s};
      ref::adamw(p, gs, ms, vs, h, norm);
      std::copy(p.begin(), p.end(), model.params.begin() + seg.offset);
      std::copy(ms.begin(), ms.end(), m.begin() + seg.offset);
      std::copy(vs.begin(), vs.end(), v.begin() + seg.offset);
    }
  }
  // Adam normalises the step, so parameter differences stay at fp32 rounding of
  // lr-sized updates; compare per tensor with a tolerance scaled to the update size.
  for (const auto& e : ref::per_tensor_errors(step.layout(), params, model.params))
    EXPECT_LE(e.error, 1e-4) << e.name;
}

}  // namespace

// Three optimizer steps track the oracle's forward/backward + fp64 AdamW.
TEST(ModelStep, AdamWStepsTrackOracle) {
  const ModelConfig config = ref::tiny_config(4, 2, false);
  track_oracle_with_adamw(config, ref::init_float_params(config, 3), 3);
}

namespace {

// Kiln's init with the biases (init 0) and q/k norm weights (init 1) moved off
// their init values, so their forward effect is exercised too.
std::vector<float> qwen_params(const ModelConfig& config, uint64_t seed) {
  std::vector<float> params = ref::init_float_params(config, seed);
  ParamLayout layout(config);
  uint64_t stream = seed * 100;
  for (const ParamInfo& p : layout.params()) {
    const bool bias = p.name.ends_with(".bias");
    if (!bias && !p.name.ends_with("_norm.weight")) continue;
    const std::vector<double> r = ref::random_vector(p.numel(), ++stream, bias ? 0.5 : 0.3);
    for (int64_t i = 0; i < p.numel(); ++i) params[p.offset + i] = float((bias ? 0.0 : 1.0) + r[i]);
  }
  return params;
}

void check_qwen_against_oracle(const ModelConfig& config, int B, int T) {
  const std::vector<float> params = qwen_params(config, 11);
  ref::RefModel model = ref::ref_model_from_float(config, params);
  ref::TokenBatch batch = ref::random_batch(config, B, T, 5, 0.2);
  std::vector<double> want_grads;
  const double want_loss =
      ref::ref_loss_and_grads(model, batch.tokens, batch.targets, B, T, &want_grads);
  StepResult got = run_fast_step(config, params, DType::f32, batch);
  EXPECT_LE(std::fabs(got.loss - want_loss) / std::fabs(want_loss), 1e-5)
      << "loss " << got.loss << " vs oracle " << want_loss;
  int extras = 0;  // the bias / q-k norm tensors must be among those compared
  for (const auto& e : ref::per_tensor_errors(model.layout, got.grads, want_grads)) {
    EXPECT_LE(e.error, 1e-4) << e.name << " (|grad| = " << e.want_norm << ")";
    if (e.name.ends_with(".bias") || e.name.ends_with("_norm.weight")) {
      EXPECT_GT(e.want_norm, 0.0) << e.name;
      ++extras;
    }
  }
  EXPECT_EQ(extras, config.n_layers * ((config.qkv_bias ? 3 : 0) + (config.qk_norm ? 2 : 0)));
}

}  // namespace

// Qwen2-shaped (q/k/v biases, GQA 7:1) and Qwen3-shaped (q/k norms, head_dim 6 with
// dim 16): loss <= 1e-5 and every gradient tensor <= 1e-4 relative, as the fp32 cases.
TEST(ModelStep, QwenShapedStepsMatchOracleFp32) {
  for (ModelConfig config : {ref::qwen2_tiny_config(), ref::qwen3_tiny_config()}) {
    for (bool tied : {true, false}) {
      config.tie_embeddings = tied;
      SCOPED_TRACE(config.name + (tied ? " tied" : " untied"));
      check_qwen_against_oracle(config, 2, 7);
      check_qwen_against_oracle(config, 1, 16);
    }
  }
}

// llama3 rope_scaling (all three frequency regimes) against the oracle's own recipe.
TEST(ModelStep, Llama3RopeScalingMatchesOracleFp32) {
  const ModelConfig config = ref::llama3_tiny_config();
  // q and k 30x Kiln's init, so attention depends on the positions (with 0.02 the
  // scores are near zero and RoPE's frequencies hardly show in the loss).
  std::vector<float> params = ref::init_float_params(config, 13);
  const ParamLayout layout(config);
  for (const ParamInfo& p : layout.params())
    if (p.name.ends_with("q_proj.weight") || p.name.ends_with("k_proj.weight"))
      for (int64_t i = 0; i < p.numel(); ++i) params[p.offset + i] *= 30.0f;
  ref::RefModel model = ref::ref_model_from_float(config, params);
  ref::TokenBatch batch = ref::random_batch(config, 2, 16, 5, 0.2);
  std::vector<double> want_grads;
  const double want_loss =
      ref::ref_loss_and_grads(model, batch.tokens, batch.targets, 2, 16, &want_grads);
  StepResult got = run_fast_step(config, params, DType::f32, batch);
  EXPECT_LE(std::fabs(got.loss - want_loss) / std::fabs(want_loss), 1e-5);
  for (const auto& e : ref::per_tensor_errors(model.layout, got.grads, want_grads))
    EXPECT_LE(e.error, 1e-4) << e.name;
  // The scaling matters: the unscaled oracle's loss is farther from the step's than
  // 10x the match tolerance, so a step that ignored rope_scaling would fail above.
  ModelConfig plain = config;
  plain.rope_scaling = {};
  const double plain_loss = ref::ref_loss_and_grads(ref::ref_model_from_float(plain, params),
                                                    batch.tokens, batch.targets, 2, 16, nullptr);
  EXPECT_GT(std::fabs(plain_loss - got.loss), 10 * 1e-5 * std::fabs(plain_loss))
      << plain_loss << " vs " << got.loss;
}

// Five AdamW steps at lr 1e-3. (At lr 1e-2 the tiny Qwen3 model's fp32 and fp64
// trajectories drift apart by step 4, ~2e-4 in every tensor alike: Adam's first
// steps move each element by ~lr whatever its gradient's size, so rounding-level
// gradient differences become lr-sized parameter differences. At 1e-3 every
// gradient tensor stays within 1.5e-5 of the oracle over all five steps.)
TEST(ModelStep, QwenShapedAdamWStepsTrackOracle) {
  for (const ModelConfig& config : {ref::qwen2_tiny_config(), ref::qwen3_tiny_config()}) {
    SCOPED_TRACE(config.name);
    track_oracle_with_adamw(config, qwen_params(config, 3), 5, 1e-3f);
  }
}

// 50 AdamW steps on one fixed batch of a stories260K-shape model drive the loss below 1.0.
TEST(ModelStep, MemorisesOneBatch) {
  ModelConfig config;
  ASSERT_TRUE(find_preset("stories260K", &config));
  CpuBackendOptions options;
  options.compute_dtype = resolve_cpu_dtype(DTypeChoice::auto_);
  CpuBackend backend(options);
  const int B = 4, T = 64;
  ModelStep step(backend, config, B, T);
  const int64_t P = step.layout().total();
  std::vector<float> params(P), grads(P);
  init_params(config, step.layout(), 1, params.data());
  std::vector<bf16> compute(P);
  const bool bf16 = backend.compute_dtype() == DType::bf16;
  if (bf16) backend.cast(compute.data(), DType::bf16, params.data(), P);
  ref::TokenBatch batch = ref::random_batch(config, B, T, 21, 0.0);
  OptimizerConfig oc;
  oc.weight_decay = 0.0f;
  AdamW adamw(backend, step.layout(), oc);
  float first = 0, last = 0;
  for (int s = 0; s < 50; ++s) {
    std::fill(grads.begin(), grads.end(), 0.0f);
    const void* c = bf16 ? static_cast<const void*>(compute.data()) : params.data();
    last = step.forward_backward({params.data(), c}, grads.data(), batch.tokens.data(),
                                 batch.targets.data());
    if (s == 0) first = last;
    adamw.step(params.data(), bf16 ? compute.data() : nullptr, backend.compute_dtype(),
               grads.data(), 1e-2f);
  }
  EXPECT_NEAR(first, std::log(512.0), 0.5);
  EXPECT_LT(last, 1.0f) << "loss after 49 updates, starting from " << first;
}

// --compact-vocab with every token "used" is exactly the full classifier.
TEST(ModelStep, CompactVocabOverAllTokensIsIdentical) {
  for (bool tied : {false, true}) {
    ModelConfig config = ref::tiny_config(4, 2, tied);
    const std::vector<float> params = ref::init_float_params(config, 4);
    ref::TokenBatch batch = ref::random_batch(config, 2, 7, 8, 0.1);
    CpuBackend backend;
    ModelStep full(backend, config, 2, 7), compact(backend, config, 2, 7);
    std::vector<int32_t> all(config.vocab_size);
    for (int i = 0; i < config.vocab_size; ++i) all[i] = i;
    compact.set_compact_vocab(all);
    const int64_t P = full.layout().total();
    std::vector<float> g1(P, 0.0f), g2(P, 0.0f);
    const float l1 = full.forward_backward({params.data(), params.data()}, g1.data(),
                                           batch.tokens.data(), batch.targets.data());
    const float l2 = compact.forward_backward({params.data(), params.data()}, g2.data(),
                                              batch.tokens.data(), batch.targets.data());
    EXPECT_EQ(l1, l2);
    EXPECT_EQ(g1, g2);
  }
}

// With a subset, the softmax runs over the subset only: classifier rows of
// unused tokens get no gradient (untied), and the loss is the subset's
// cross-entropy, which is below the full one.
TEST(ModelStep, CompactVocabSubsetRestrictsTheSoftmax) {
  ModelConfig config = ref::tiny_config(4, 2, false);
  const std::vector<float> params = ref::init_float_params(config, 4);
  ref::TokenBatch batch = ref::random_batch(config, 2, 7, 8, 0.0);
  std::vector<int32_t> used;
  for (int32_t t : batch.targets) used.push_back(t);
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  ASSERT_LT(int(used.size()), config.vocab_size);
  CpuBackend backend;
  ModelStep full(backend, config, 2, 7), compact(backend, config, 2, 7);
  compact.set_compact_vocab(used);
  const int64_t P = full.layout().total();
  std::vector<float> g1(P, 0.0f), g2(P, 0.0f);
  const float l1 = full.forward_backward({params.data(), params.data()}, g1.data(),
                                         batch.tokens.data(), batch.targets.data());
  const float l2 = compact.forward_backward({params.data(), params.data()}, g2.data(),
                                            batch.tokens.data(), batch.targets.data());
  EXPECT_LT(l2, l1);
  const ParamInfo* head = full.layout().find("lm_head.weight");
  ASSERT_NE(head, nullptr);
  for (int v = 0; v < config.vocab_size; ++v) {
    const bool is_used = std::binary_search(used.begin(), used.end(), v);
    double norm = 0;
    for (int c = 0; c < config.dim; ++c)
      norm += std::fabs(g2[head->offset + int64_t(v) * config.dim + c]);
    if (is_used)
      EXPECT_GT(norm, 0.0) << "token " << v;
    else
      EXPECT_EQ(norm, 0.0) << "token " << v;
  }
}
