// The fp64 model oracle checked on its own: its hand-written backward against
// central finite differences of its loss for every parameter element, and its
// forward against properties the math guarantees (causality, positions restarting
// per sequence, a closed form when the residual branches are zero, log V at init).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <ostream>

#include "core/error.h"
#include "model/param_layout.h"
#include "reference/compare.h"
#include "reference/model_fixture.h"
#include "reference/reference_model.h"
#include "reference/reference_ops.h"

using namespace kiln;
using namespace kiln::ref;

namespace {

// Weights that make every nonlinearity matter: with init_params' 0.02 the attention
// is nearly uniform and SiLU nearly linear, which would let a wrong softmax or
// SiLU derivative hide. Matrices uniform in +-1.5/sqrt(in) (outputs of order 1),
// embedding +-1, norm weights 1 +- 0.3.
RefModel strong_model(const ModelConfig& config, uint64_t seed) {
  RefModel m = make_zero_ref_model(config);
  uint64_t stream = seed * 1000;
  for (const ParamInfo& p : m.layout.params()) {
    const bool bias = p.name.ends_with(".bias");  // centred on 0, +-0.5
    const bool norm = p.shape.size() == 1 && !bias;
    const bool embed = p.name == "model.embed_tokens.weight";
    const double scale = bias    ? 0.5
                         : norm  ? 0.3
                         : embed ? 1.0
                                 : 1.5 / std::sqrt(double(p.shape[1]));
    std::vector<double> r = random_vector(p.numel(), ++stream, scale);
    for (int64_t i = 0; i < p.numel(); ++i) m.params[p.offset + i] = (norm ? 1.0 : 0.0) + r[i];
  }
  return m;
}

// B = 2, T = 5 with a few ignored targets (at least one per sequence) and the rest valid.
TokenBatch fd_batch(const ModelConfig& config, uint64_t seed) {
  TokenBatch batch = random_batch(config, 2, 5, seed, 0.0);
  batch.targets[1] = -1;
  batch.targets[4] = -1;
  batch.targets[7] = -1;
  return batch;
}

// Central differences (L(p + h) - L(p - h)) / 2h for every element of every tensor,
// compared per tensor with the analytic gradient g by ||fd - g||.
//
// Tolerance. Per element the central difference is off by the truncation term
// h^2/6 |L'''| plus the rounding term delta_L / h, where delta_L is the rounding
// error of one fp64 loss evaluation, of order a few u |L| (u = 2^-53).
//   rounding:   with h = 1e-5 and |L| ~ 3: ~ 64 u |L| / h ~ 2e-9 per element; over a
//               tensor of n elements the norm is at most sqrt(n) times that.
//   truncation: h^2 = 1e-10 times a third derivative that, for weights of order 1,
//               is within ~1e3 of the gradient's own scale: ~1e-7 relative.
// So tol = 1e-6 ||g|| + sqrt(n) * 64 u max(1, |L|) / h; a wrong derivative is off by
// O(1) relative, far above it. Set KILN_FD_VERBOSE=1 to print every tensor's numbers.
struct FdReport {
  double worst_rel = 0;  // max over tensors of ||fd - g|| / ||g||
  std::string worst_name;
  double max_abs = 0;       // max over elements of |fd - g|
  double worst_of_tol = 0;  // max over tensors of ||fd - g|| / tol
};

FdReport check_by_finite_differences(const RefModel& model, const TokenBatch& batch) {
  std::vector<double> grads;
  const double loss =
      ref_loss_and_grads(model, batch.tokens, batch.targets, batch.B, batch.T, &grads);
  EXPECT_TRUE(std::isfinite(loss));
  const double u = std::numeric_limits<double>::epsilon() / 2;
  const double h = 1e-5;
  RefModel probe = model;
  FdReport report;
  for (const ParamInfo& p : model.layout.params()) {
    double diff2 = 0, norm2 = 0;
    for (int64_t i = p.offset; i < p.offset + p.numel(); ++i) {
      const double original = probe.params[i];
      probe.params[i] = original + h;
      const double plus =
          ref_loss_and_grads(probe, batch.tokens, batch.targets, batch.B, batch.T, nullptr);
      probe.params[i] = original - h;
      const double minus =
          ref_loss_and_grads(probe, batch.tokens, batch.targets, batch.B, batch.T, nullptr);
      probe.params[i] = original;
      const double fd = (plus - minus) / (2 * h);
      diff2 += (fd - grads[i]) * (fd - grads[i]);
      norm2 += grads[i] * grads[i];
      report.max_abs = std::max(report.max_abs, std::fabs(fd - grads[i]));
    }
    const double diff = std::sqrt(diff2), norm = std::sqrt(norm2);
    const double tol =
        1e-6 * norm + std::sqrt(double(p.numel())) * 64 * u * std::max(1.0, std::fabs(loss)) / h;
    EXPECT_LE(diff, tol) << p.name << ": ||fd - grad|| = " << diff << ", ||grad|| = " << norm;
    // Every tensor takes part in the loss, so a zero gradient means a missing path.
    EXPECT_GT(norm, 0.0) << p.name << " got no gradient";
    if (std::getenv("KILN_FD_VERBOSE"))
      std::printf("    %-45s n %5ld  diff %.2e  norm %.2e  tol %.2e  diff/tol %.3f\n",
                  p.name.c_str(), long(p.numel()), diff, norm, tol, diff / tol);
    report.worst_of_tol = std::max(report.worst_of_tol, diff / tol);
    const double rel = diff / std::max(norm, 1e-300);
    if (rel > report.worst_rel) {
      report.worst_rel = rel;
      report.worst_name = p.name;
    }
  }
  std::printf(
      "  loss %.6f, worst per-tensor ||fd - g||/||g|| = %.3e (%s), max |fd - g| = %.3e, "
      "worst ||fd - g||/tol = %.4f\n",
      loss, report.worst_rel, report.worst_name.c_str(), report.max_abs, report.worst_of_tol);
  return report;
}

struct FdCase {
  int n_heads, n_kv_heads;
  bool tied;
};
void PrintTo(const FdCase& c, std::ostream* os) {
  *os << "H=" << c.n_heads << " Hkv=" << c.n_kv_heads << (c.tied ? " tied" : " untied");
}

class ReferenceModelGradient : public ::testing::TestWithParam<FdCase> {};

TEST_P(ReferenceModelGradient, MatchesCentralFiniteDifferencesForEveryParameter) {
  const FdCase c = GetParam();
  const ModelConfig config = tiny_config(c.n_heads, c.n_kv_heads, c.tied);
  check_by_finite_differences(strong_model(config, 3), fd_batch(config, 5));
}

INSTANTIATE_TEST_SUITE_P(GqaAndTying, ReferenceModelGradient,
                         ::testing::Values(FdCase{4, 2, false}, FdCase{4, 2, true},
                                           FdCase{4, 4, false}, FdCase{4, 1, true},
                                           FdCase{4, 1, false}),
                         [](const auto& info) {
                           return "H" + std::to_string(info.param.n_heads) + "_Hkv" +
                                  std::to_string(info.param.n_kv_heads) +
                                  (info.param.tied ? "_tied" : "_untied");
                         });

// The Qwen extras in the whole-model oracle: q/k/v biases with GQA 7:1 (Qwen2),
// per-head q/k norms with head_dim != dim / n_heads (Qwen3), and llama3 rope_scaling,
// every element by FD.
TEST(ReferenceModel, QwenShapedGradientsMatchFiniteDifferences) {
  for (const ModelConfig& config :
       {qwen2_tiny_config(), qwen3_tiny_config(), llama3_tiny_config()}) {
    SCOPED_TRACE(config.name);
    check_by_finite_differences(strong_model(config, 4), fd_batch(config, 6));
    ModelConfig untied = config;
    untied.tie_embeddings = false;
    check_by_finite_differences(strong_model(untied, 5), fd_batch(untied, 7));
  }
}

// Central difference of eval() in v[i].
template <typename F>
double central_difference(std::vector<double>& v, int64_t i, double h, F eval) {
  const double o = v[i];
  v[i] = o + h;
  const double plus = eval();
  v[i] = o - h;
  const double minus = eval();
  v[i] = o;
  return (plus - minus) / (2 * h);
}

// The per-op oracles of the new ops: their backward against central differences of
// their forward, for the linear functional L = sum(out * cot) (cot random).
// Tolerance: rounding ~ 64 u |L| / h with |L| ~ sqrt(N W) ~ 10 and h = 1e-6 gives
// ~1e-8; truncation h^2 |third derivative| ~ 1e-12. A wrong term is O(1) off.
TEST(ReferenceOps, BiasAndHeadNormBackwardMatchFiniteDifferences) {
  const int64_t N = 5;
  const int H = 3, Hkv = 1, D = 6, W = (H + 2 * Hkv) * D;
  const double eps = 1e-6, h = 1e-6, tol = 1e-7;
  Vec x = random_vector(N * W, 31, 1.0);
  const Vec cot = random_vector(N * W, 32, 1.0);
  Vec qw = random_vector(D, 33, 0.3), kw = random_vector(D, 34, 0.3);
  for (int i = 0; i < D; ++i) qw[i] += 1.0, kw[i] += 1.0;
  auto loss = [&] {
    Vec out, rstd;
    head_rmsnorm_forward(out, rstd, x, qw, kw, N, H, Hkv, D, eps);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += out[i] * cot[i];
    return s;
  };
  Vec out, rstd;
  head_rmsnorm_forward(out, rstd, x, qw, kw, N, H, Hkv, D, eps);
  Vec dx = cot, dqw(D, 0.5), dkw(D, -0.5);  // weight grads accumulate onto +-0.5
  head_rmsnorm_backward(dx, dqw, dkw, x, qw, kw, rstd, N, H, Hkv, D);
  for (int64_t i = 0; i < N * W; ++i)  // value heads: dx = cot (passed through)
    EXPECT_NEAR(dx[i], central_difference(x, i, h, loss), tol) << "x " << i;
  for (int i = 0; i < D; ++i) {
    EXPECT_NEAR(dqw[i] - 0.5, central_difference(qw, i, h, loss), tol) << "q_weight " << i;
    EXPECT_NEAR(dkw[i] + 0.5, central_difference(kw, i, h, loss), tol) << "k_weight " << i;
  }
  // y = x + b: dL/db_c = sum_n cot[n, c].
  Vec b = random_vector(W, 35, 1.0), db(W, 0.0);
  bias_backward(db, cot, N, W);
  auto bias_loss = [&] {
    Vec y = x;
    bias_forward(y, b, N, W);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * cot[i];
    return s;
  };
  for (int c = 0; c < W; ++c)
    EXPECT_NEAR(db[c], central_difference(b, c, h, bias_loss), tol) << "bias " << c;
}

// The fixture's model (Kiln's own fp32 init, widened) at its real, small scale.
TEST(ReferenceModel, GradientMatchesFiniteDifferencesAtKilnInit) {
  const ModelConfig config = tiny_config(4, 2, true);
  check_by_finite_differences(make_ref_model(config, 42), fd_batch(config, 9));
}

// At init the logits are small (std s ~ 0.02 sqrt(C) for unit-rms xf), so each
// row's loss is log V + O(s): logsumexp(z) = log V + mean(z) + O(s^2) and z[target] = O(s).
// The mean over N rows therefore lies within log V +- (s^2 + 4 s) for a 4-sigma margin.
TEST(ReferenceModel, LossAtInitIsNearLogV) {
  ModelConfig config;
  ASSERT_TRUE(find_preset("stories260K", &config));
  const RefModel model = make_ref_model(config, 1);
  const TokenBatch batch = random_batch(config, 2, 8, 2);
  const double loss = ref_loss_and_grads(model, batch.tokens, batch.targets, 2, 8, nullptr);
  const std::vector<double> logits = ref_logits(model, batch.tokens, 2, 8);
  double ss = 0;
  for (double z : logits) ss += z * z;
  const double s = std::sqrt(ss / logits.size());
  EXPECT_LT(s, 0.5);  // 0.02 * sqrt(64) = 0.16 expected
  EXPECT_NEAR(loss, std::log(double(config.vocab_size)), s * s + 4 * s);
}

// Changing the token at position t of one sequence leaves every logit before t, and
// every logit of the other sequence, bit for bit unchanged; the ones from t on change.
TEST(ReferenceModel, AttentionIsCausalAndSequencesAreIndependent) {
  const ModelConfig config = tiny_config(4, 2, false);
  const RefModel model = strong_model(config, 7);
  const int B = 2, T = 6, V = config.vocab_size, t_changed = 3;
  TokenBatch batch = random_batch(config, B, T, 8);
  const std::vector<double> before = ref_logits(model, batch.tokens, B, T);
  batch.tokens[t_changed] = (batch.tokens[t_changed] + 1) % V;
  const std::vector<double> after = ref_logits(model, batch.tokens, B, T);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t) {
      bool same = true;
      for (int v = 0; v < V; ++v)
        same = same && before[(b * T + t) * V + v] == after[(b * T + t) * V + v];
      const bool should_change = b == 0 && t >= t_changed;
      EXPECT_EQ(same, !should_change) << "sequence " << b << " position " << t;
    }
}

// Positions are 0-based within each sequence: two copies of one sequence in a batch
// give identical logits (a global position b*T + t would rotate the second copy).
TEST(ReferenceModel, PositionsRestartInEverySequence) {
  const ModelConfig config = tiny_config(4, 2, true);
  const RefModel model = strong_model(config, 4);
  const int T = 7, V = config.vocab_size;
  TokenBatch one = random_batch(config, 1, T, 3);
  std::vector<int32_t> tokens = one.tokens;
  tokens.insert(tokens.end(), one.tokens.begin(), one.tokens.end());
  const std::vector<double> logits = ref_logits(model, tokens, 2, T);
  for (int i = 0; i < T * V; ++i) ASSERT_EQ(logits[i], logits[T * V + i]) << i;
  // Position 0 is not rotated (angle 0), later positions are: another rope_theta
  // leaves every t = 0 row bit for bit and changes every later one.
  RefModel other = model;
  other.config.rope_theta = 500.0;
  const std::vector<double> rotated = ref_logits(other, tokens, 2, T);
  for (int t = 0; t < T; ++t) {
    bool same = true;
    for (int v = 0; v < V; ++v) same = same && logits[t * V + v] == rotated[t * V + v];
    EXPECT_EQ(same, t == 0) << "position " << t;
  }
}

// With o_proj and down_proj zero, both residual branches add nothing, so
// logits[n] = (rmsnorm(embed[token]) * final_norm) . Wcls^T, computed here directly.
TEST(ReferenceModel, ZeroResidualBranchesGiveTheClosedForm) {
  for (bool tied : {false, true}) {
    const ModelConfig config = tiny_config(4, 2, tied);
    RefModel model = strong_model(config, 6);
    for (int l = 0; l < config.n_layers; ++l) {
      const LayerOffsets& o = model.layout.layer(l);
      for (int64_t i = 0; i < int64_t(config.dim) * config.q_dim(); ++i) model.params[o.wo + i] = 0;
      for (int64_t i = 0; i < int64_t(config.dim) * config.hidden_dim; ++i)
        model.params[o.w2 + i] = 0;
    }
    const TokenBatch batch = random_batch(config, 2, 4, 12);
    const std::vector<double> logits = ref_logits(model, batch.tokens, 2, 4);
    const int C = config.dim, V = config.vocab_size;
    const double* P = model.params.data();
    std::vector<double> want(logits.size());
    for (int n = 0; n < 8; ++n) {
      const double* e = P + model.layout.embedding() + int64_t(batch.tokens[n]) * C;
      double ms = 0;
      for (int j = 0; j < C; ++j) ms += e[j] * e[j] / C;
      const double r = 1 / std::sqrt(ms + config.norm_eps);
      for (int v = 0; v < V; ++v) {
        double z = 0;
        for (int j = 0; j < C; ++j)
          z += e[j] * r * P[model.layout.final_norm() + j] *
               P[model.layout.classifier() + v * C + j];
        want[n * V + v] = z;
      }
    }
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR(logits[i], want[i],
                  64 * std::numeric_limits<double>::epsilon() * (1 + std::fabs(want[i])));
  }
}

// The loss is the mean of logsumexp - logit[target] of ref_logits over valid
// targets; asking for grads does not change it; grads are overwritten (=).
TEST(ReferenceModel, LossAgreesWithLogitsAndGradsAreOverwritten) {
  const ModelConfig config = tiny_config(4, 1, false);
  const RefModel model = strong_model(config, 8);
  const TokenBatch batch = random_batch(config, 3, 4, 21, 0.25);
  const int V = config.vocab_size;
  const std::vector<double> logits = ref_logits(model, batch.tokens, 3, 4);
  double sum = 0;
  int valid = 0;
  for (int n = 0; n < 12; ++n) {
    if (batch.targets[n] < 0) continue;
    double se = 0;
    for (int v = 0; v < V; ++v) se += std::exp(logits[n * V + v]);
    sum += std::log(se) - logits[n * V + batch.targets[n]];
    ++valid;
  }
  ASSERT_GT(valid, 0);
  const double loss_only = ref_loss_and_grads(model, batch.tokens, batch.targets, 3, 4, nullptr);
  EXPECT_NEAR(loss_only, sum / valid, 64 * std::numeric_limits<double>::epsilon() * loss_only);
  std::vector<double> fresh, reused(model.layout.total() + 5, 123.0);
  EXPECT_EQ(ref_loss_and_grads(model, batch.tokens, batch.targets, 3, 4, &fresh), loss_only);
  EXPECT_EQ(ref_loss_and_grads(model, batch.tokens, batch.targets, 3, 4, &reused), loss_only);
  EXPECT_EQ(fresh, reused);
}

TEST(ReferenceModel, NoValidTargetGivesZeroLossAndZeroGrads) {
  const ModelConfig config = tiny_config(4, 2, true);
  const RefModel model = strong_model(config, 2);
  TokenBatch batch = random_batch(config, 1, 3, 1);
  batch.targets.assign(3, -1);
  std::vector<double> grads(7, 1.0);
  EXPECT_EQ(ref_loss_and_grads(model, batch.tokens, batch.targets, 1, 3, &grads), 0.0);
  EXPECT_EQ(grads, std::vector<double>(model.layout.total(), 0.0));
}

TEST(ReferenceModel, BadInputIsRefused) {
  const ModelConfig config = tiny_config(4, 2, false);
  const RefModel model = strong_model(config, 2);
  TokenBatch batch = random_batch(config, 1, 3, 1);
  EXPECT_THROW(ref_logits(model, batch.tokens, 1, 4), InputError);  // wrong size
  batch.tokens[1] = config.vocab_size;
  EXPECT_THROW(ref_logits(model, batch.tokens, 1, 3), InputError);
  batch.tokens[1] = 0;
  batch.targets[2] = config.vocab_size;
  EXPECT_THROW(ref_loss_and_grads(model, batch.tokens, batch.targets, 1, 3, nullptr), InputError);
}

// The fixture builds exactly Kiln's fp32 init, widened without change.
TEST(ModelFixture, RefModelHoldsTheFloatInitExactly) {
  const ModelConfig config = tiny_config(4, 2, false);
  const std::vector<float> f = init_float_params(config, 77);
  const RefModel m = make_ref_model(config, 77);
  ASSERT_EQ(m.params.size(), f.size());
  for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(m.params[i], double(f[i]));
  const auto rows = per_tensor_errors(m.layout, f, m.params);
  ASSERT_EQ(rows.size(), m.layout.params().size());
  for (const auto& r : rows) EXPECT_EQ(r.error, 0.0) << r.name;
  const TokenBatch a = random_batch(config, 2, 3, 5, 0.5), b = random_batch(config, 2, 3, 5, 0.5);
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.targets, b.targets);
}

}  // namespace
