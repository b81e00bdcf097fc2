// KV-cache decoding (src/infer/generator.h) against the fp64 whole-model oracle,
// and the samplers (src/infer/sampler.h) against the distributions they promise.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "infer/generator.h"
#include "infer/sampler.h"
#include "model/param_layout.h"
#include "reference/compare.h"
#include "reference/reference_model.h"

namespace kiln {
namespace {

// The tiny model of the brief: dim 32, 2 layers, 4 heads (head_dim 8), hidden 48,
// vocab 37; n_kv_heads and tying vary.
ModelConfig tiny_config(int n_kv_heads, bool tie) {
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = n_kv_heads;
  c.head_dim = 8;
  c.hidden_dim = 48;
  c.vocab_size = 37;
  c.max_seq_len = 16;
  c.tie_embeddings = tie;
  c.name = "tiny";
  c.validate("tiny test config");
  return c;
}

// Random weights scaled so that every stage matters: a matrix [out, in] is uniform
// with std gain / sqrt(in), so its outputs have about `gain` times the size of its
// inputs. With gain 1.5 on Wqkv the attention scores q.k / sqrt(D) have std ~2, so
// softmax is far from uniform and RoPE changes the result visibly (with llama2.c's
// 0.02 init the scores are ~1e-3 and a broken RoPE would hide under the tolerance).
// Norm weights are uniform in [0.5, 1.5], so a norm weight applied to the wrong
// place also shows.
std::vector<float> test_params(const ModelConfig& c, uint64_t seed) {
  ParamLayout layout(c);
  std::vector<float> p(layout.total());
  for (size_t i = 0; i < layout.params().size(); ++i) {
    const ParamInfo& info = layout.params()[i];
    Rng rng(seed, i + 1);
    float* w = p.data() + info.offset;
    if (info.shape.size() == 1) {
      for (int64_t j = 0; j < info.numel(); ++j) w[j] = 0.5f + rng.uniform();
      continue;
    }
    const bool embedding = info.name == "model.embed_tokens.weight";
    const bool qkv = info.name.find("self_attn.") != std::string::npos &&
                     info.name.find("o_proj") == std::string::npos;
    const double gain = embedding ? 1.0 * std::sqrt(double(info.shape[1])) : (qkv ? 1.5 : 1.0);
    const double half_width = gain * std::sqrt(3.0 / double(info.shape[1]));
    for (int64_t j = 0; j < info.numel(); ++j)
      w[j] = float(half_width * (2.0 * rng.uniform_double() - 1.0));
  }
  return p;
}

ref::RefModel to_ref(const ModelConfig& c, const std::vector<float>& params) {
  return ref::RefModel{c, ParamLayout(c), std::vector<double>(params.begin(), params.end())};
}

std::vector<int> random_tokens(int V, int T, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<int> t(T);
  for (int& x : t) x = int(rng.below(V));
  return t;
}

// Tolerance for fp32 logits against the fp64 oracle (the weights are the same
// numbers in both, so only fp32 arithmetic differs). Each stage on the path to the
// logits is a sum of at most K_max = max(C, H*D, F, T) rounded products; its
// relative error grows like sqrt(K) * u in the random-walk model that
// ref::derived_tolerance uses, and with the weights above no stage amplifies
// relative error by more than O(1) (every residual branch is RMS-normalised
// first). A layer has 10 sequential stages (norm, Wqkv, RoPE, scores, softmax,
// weighted sum of v, Wo + residual, norm, W13 + SwiGLU, W2 + residual), the head
// 2 (final norm, classifier), and first-order errors add: depth =
// (10 L + 2) sqrt(K_max), tol = 8 depth u (derived_tolerance's safety factor).
// For the tiny model: 22 * sqrt(48) * 8 * 2^-24 = 7.3e-5.
double logits_tolerance(const ModelConfig& c, int T) {
  const int k_max = std::max({c.dim, c.q_dim(), c.hidden_dim, T});
  const double depth = (10.0 * c.n_layers + 2.0) * std::sqrt(double(k_max));
  return ref::derived_tolerance(DType::f32, depth);
}

// Logits [T, V] from feeding `tokens` one at a time through a fresh cache.
std::vector<std::vector<float>> incremental_logits(Generator& g, const std::vector<int>& tokens) {
  g.reset();
  std::vector<std::vector<float>> rows;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* logits = g.forward(tokens[t], int(t));
    rows.emplace_back(logits, logits + g.config().vocab_size);
  }
  return rows;
}

// Per position: normalized_error of the incremental row against the oracle's row.
std::vector<double> errors_vs_oracle(const std::vector<std::vector<float>>& rows,
                                     const std::vector<double>& want, int V) {
  std::vector<double> errors;
  for (size_t t = 0; t < rows.size(); ++t) {
    std::vector<double> row(want.begin() + t * V, want.begin() + (t + 1) * V);
    errors.push_back(ref::normalized_error(rows[t], row));
  }
  return errors;
}

std::vector<double> oracle_logits(const ModelConfig& c, const std::vector<float>& params,
                                  const std::vector<int>& tokens) {
  return ref::ref_logits(to_ref(c, params), std::vector<int32_t>(tokens.begin(), tokens.end()), 1,
                         int(tokens.size()));
}

// ---------------------------------------------------------------------------------
// Incremental decoding == full fp64 forward, at every position.

struct GeneratorCase {
  int n_kv_heads;
  bool tie;
};
void PrintTo(const GeneratorCase& c, std::ostream* os) {
  *os << "n_kv_heads " << c.n_kv_heads << (c.tie ? ", tied" : ", untied");
}

class GeneratorVsOracle : public ::testing::TestWithParam<GeneratorCase> {};

TEST_P(GeneratorVsOracle, IncrementalLogitsMatchFullForwardAtEveryPosition) {
  const GeneratorCase gc = GetParam();
  const ModelConfig c = tiny_config(gc.n_kv_heads, gc.tie);
  const int T = 9;
  const std::vector<float> params = test_params(c, 11 + gc.n_kv_heads + 10 * gc.tie);
  const std::vector<int> tokens = random_tokens(c.vocab_size, T, 5);
  const std::vector<double> want = oracle_logits(c, params, tokens);
  ASSERT_EQ(want.size(), size_t(T) * c.vocab_size);

  Generator g(c, params.data(), c.max_seq_len);
  const std::vector<double> errors = errors_vs_oracle(incremental_logits(g, tokens), want, c.vocab_size);
  const double tol = logits_tolerance(c, T);
  for (int t = 0; t < T; ++t) EXPECT_LE(errors[t], tol) << "position " << t;
  EXPECT_EQ(g.filled(), T);
  std::printf("max normalized error %.3g over %d positions (tolerance %.3g)\n",
              *std::max_element(errors.begin(), errors.end()), T, tol);
}

INSTANTIATE_TEST_SUITE_P(GqaAndTying, GeneratorVsOracle,
                         ::testing::Values(GeneratorCase{2, false}, GeneratorCase{2, true},
                                           GeneratorCase{1, false}, GeneratorCase{4, true}),
                         [](const auto& info) {
                           return "kv" + std::to_string(info.param.n_kv_heads) +
                                  (info.param.tie ? "_tied" : "_untied");
                         });

// The comparison above can fail: a generator whose RoPE uses another theta, or one
// fed a different earlier token, lands far outside the tolerance at later positions.
TEST(GeneratorVsOracle, ComparisonDetectsRopeAndContextMistakes) {
  const ModelConfig c = tiny_config(2, false);
  const int T = 9;
  const std::vector<float> params = test_params(c, 13);
  const std::vector<int> tokens = random_tokens(c.vocab_size, T, 5);
  const std::vector<double> want = oracle_logits(c, params, tokens);
  const double tol = logits_tolerance(c, T);

  ModelConfig wrong_theta = c;
  wrong_theta.rope_theta = 500.0;
  Generator g_theta(wrong_theta, params.data(), c.max_seq_len);
  const auto e_theta = errors_vs_oracle(incremental_logits(g_theta, tokens), want, c.vocab_size);
  EXPECT_LE(e_theta[0], tol);  // RoPE at position 0 is the identity
  EXPECT_GT(*std::max_element(e_theta.begin() + 1, e_theta.end()), 100 * tol);

  std::vector<int> other = tokens;
  other[0] = (tokens[0] + 1) % c.vocab_size;
  Generator g(c, params.data(), c.max_seq_len);
  const auto e_ctx = errors_vs_oracle(incremental_logits(g, other), want, c.vocab_size);
  for (int t = 1; t < T; ++t) EXPECT_GT(e_ctx[t], 100 * tol) << "position " << t;
}

// ---------------------------------------------------------------------------------
// Cache bookkeeping: reset, rewind, prefill, thread count.

TEST(Generator, ResetRewindPrefillAndThreadsGiveIdenticalLogits) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 17);
  const std::vector<int> tokens = random_tokens(c.vocab_size, 9, 6);
  Generator g(c, params.data(), 12);
  const auto first = incremental_logits(g, tokens);
  EXPECT_EQ(incremental_logits(g, tokens), first);  // reset() forgets everything

  const float* last = g.prefill(tokens);
  EXPECT_EQ(std::vector<float>(last, last + c.vocab_size), first.back());

  // Rewind to position 4 with another token, then go on: the same as a fresh run.
  std::vector<int> branched = tokens;
  branched[4] = (tokens[4] + 7) % c.vocab_size;
  std::vector<std::vector<float>> rewound;
  for (int t = 4; t < 9; ++t) {
    const float* l = g.forward(branched[t], t);
    rewound.emplace_back(l, l + c.vocab_size);
  }
  const auto fresh = incremental_logits(g, branched);
  for (int t = 4; t < 9; ++t) EXPECT_EQ(rewound[t - 4], fresh[t]) << "position " << t;

}

// One thread owns each output element, so the thread count changes nothing. The
// model is just big enough that every matrix-vector product and, from position 32
// on, the attention take their parallel paths (generator.cpp's kParallelMacs).
TEST(Generator, LogitsDoNotDependOnTheThreadCount) {
  ModelConfig c = tiny_config(2, false);
  c.dim = 128;
  c.n_heads = 8;
  c.head_dim = 64;
  c.hidden_dim = 384;
  c.vocab_size = 512;
  c.n_layers = 1;
  c.max_seq_len = 40;
  const std::vector<float> params = test_params(c, 31);
  const std::vector<int> tokens = random_tokens(c.vocab_size, 40, 8);
  set_generator_parallel_macs(int64_t(1) << 15);
  Generator g(c, params.data(), c.max_seq_len);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one_thread = incremental_logits(g, tokens);
  omp_set_num_threads(std::max(threads, 2));
  const auto many_threads = incremental_logits(g, tokens);
  omp_set_num_threads(threads);
  set_generator_parallel_macs(int64_t(1) << 20);
  EXPECT_EQ(one_thread, many_threads);
}

TEST(Generator, RejectsBadTokensPositionsAndLengths) {
  const ModelConfig c = tiny_config(2, true);
  const std::vector<float> params = test_params(c, 19);
  Generator g(c, params.data(), 4);
  EXPECT_THROW(g.forward(-1, 0), InputError);
  EXPECT_THROW(g.forward(c.vocab_size, 0), InputError);
  EXPECT_THROW(g.forward(0, -1), InputError);
  EXPECT_THROW(g.forward(0, 1), InputError);  // position 0 never fed
  g.forward(0, 0);
  g.forward(1, 1);
  EXPECT_THROW(g.forward(0, 3), InputError);  // skips position 2
  g.forward(2, 2);
  g.forward(3, 3);
  EXPECT_THROW(g.forward(0, 4), InputError);  // max_len 4
  EXPECT_THROW(g.prefill({}), InputError);
  EXPECT_THROW(g.prefill({1, 2, 3, 4, 5}), InputError);
  EXPECT_THROW(Generator(c, params.data(), 0), InputError);
  EXPECT_THROW(Generator(c, params.data(), c.max_seq_len + 1), InputError);
  EXPECT_THROW(Generator(c, nullptr, 4), InputError);
  try {
    g.forward(c.vocab_size, 0);
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("token id out of range"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------
// generate(): streaming, stopping, determinism.

TEST(Generate, GreedyFollowsArgmaxAndStopsWhereAsked) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 23);
  Generator g(c, params.data(), 12);
  const std::vector<int> prompt = {1, 5, 9};

  std::vector<int> streamed;
  GenerationStats s = generate(g, prompt, 6, 0.0f, 1.0f, 0, [&](int t) {
    streamed.push_back(t);
    return true;
  });
  ASSERT_EQ(streamed.size(), 6u);
  EXPECT_EQ(s.generated_tokens, 6);
  EXPECT_EQ(s.prompt_tokens, 3);
  EXPECT_FALSE(s.stopped_by_callback);
  EXPECT_EQ(g.filled(), 9);  // every generated token was fed

  // The same by hand: feed, take the argmax, feed it, ...
  Generator manual(c, params.data(), 12);
  const float* logits = manual.prefill(prompt);
  for (int i = 0; i < 6; ++i) {
    const int t = argmax(logits, c.vocab_size);
    EXPECT_EQ(streamed[i], t) << "step " << i;
    logits = manual.forward(t, 3 + i);
  }

  // on_token returning false stops at once; max_len caps prompt + generated.
  int calls = 0;
  s = generate(g, prompt, 6, 0.0f, 1.0f, 0, [&](int) { return ++calls < 2; });
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(s.stopped_by_callback);
  EXPECT_EQ(g.filled(), 4);
  calls = 0;
  s = generate(g, prompt, 100, 0.0f, 1.0f, 0, [&](int) { return ++calls > 0; });
  EXPECT_EQ(calls, 12 - 3);
  EXPECT_TRUE(s.reached_max_len);
}

TEST(Generate, SeededSamplingIsDeterministicAndInputsAreValidated) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 29);
  Generator g(c, params.data(), 16);
  auto run = [&](uint64_t seed) {
    std::vector<int> out;
    generate(g, {2}, 15, 1.0f, 0.9f, seed, [&](int t) {
      out.push_back(t);
      return true;
    });
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
  auto ok = [](int) { return true; };
  EXPECT_THROW(generate(g, {}, 4, 1.0f, 1.0f, 0, ok), InputError);
  EXPECT_THROW(generate(g, std::vector<int>(17, 1), 4, 1.0f, 1.0f, 0, ok), InputError);
  EXPECT_THROW(generate(g, {c.vocab_size}, 4, 1.0f, 1.0f, 0, ok), InputError);
  EXPECT_THROW(generate(g, {1}, -1, 1.0f, 1.0f, 0, ok), InputError);
  EXPECT_THROW(generate(g, {1}, 4, -1.0f, 1.0f, 0, ok), InputError);
  EXPECT_THROW(generate(g, {1}, 4, 1.0f, 0.0f, 0, ok), InputError);
}

// ---------------------------------------------------------------------------------
// Samplers.

TEST(Sampler, GreedyIsArgmaxWithLowestIndexOnTies) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 3.0f, 1.0f, 3.0f, 0.0f};
  Rng rng(1);
  const uint64_t state = rng.state();
  EXPECT_EQ(sample_next(logits.data(), 7, 0.0f, 1.0f, rng), 3);
  EXPECT_EQ(sample_next(logits.data(), 7, 0.0f, 0.5f, rng), 3);
  EXPECT_EQ(rng.state(), state);  // greedy draws nothing
  Rng data(7);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> l(101);
    for (float& x : l) x = data.normal();
    int best = 0;
    for (int i = 1; i < 101; ++i)
      if (l[i] > l[best]) best = i;
    EXPECT_EQ(sample_next(l.data(), 101, 0.0f, 1.0f, rng), best);
  }
}

TEST(Sampler, TinyTopPAlwaysGivesTheArgmax) {
  Rng data(9), rng(10);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> l(64);
    for (float& x : l) x = 2.0f * data.normal();
    EXPECT_EQ(sample_next(l.data(), 64, 1.0f, 1e-6f, rng), argmax(l.data(), 64));
    EXPECT_EQ(sample_next(l.data(), 64, 3.0f, 1e-6f, rng), argmax(l.data(), 64));
  }
  const std::vector<float> tied = {0.0f, 4.0f, 1.0f, 4.0f};
  for (int trial = 0; trial < 20; ++trial) EXPECT_EQ(sample_next(tied.data(), 4, 1.0f, 1e-6f, rng), 1);
  // Two equally likely tokens: the nucleus of top_p < 1/2 is the first of them.
  const std::vector<float> even = {0.5f, 0.5f};
  for (int trial = 0; trial < 20; ++trial) {
    EXPECT_EQ(sample_next(even.data(), 2, 1.0f, 1e-6f, rng), 0);
    EXPECT_EQ(sample_next(even.data(), 2, 1.0f, 0.4f, rng), 0);
  }
  const std::vector<float> single = {-3.0f};
  EXPECT_EQ(sample_next(single.data(), 1, 1.0f, 0.5f, rng), 0);
}

// Draws n samples; each count is Binomial(n, p_i), so it lies within 5 standard
// deviations of n p_i (a false alarm has probability ~6e-7 per token).
void expect_distribution(const std::vector<float>& logits, float temperature, float top_p,
                         const std::vector<double>& p, uint64_t seed) {
  const int n = 20000, V = int(logits.size());
  Rng rng(seed);
  std::vector<int> counts(V, 0);
  for (int i = 0; i < n; ++i) {
    const int t = sample_next(logits.data(), V, temperature, top_p, rng);
    ASSERT_GE(t, 0);
    ASSERT_LT(t, V);
    ++counts[t];
  }
  for (int i = 0; i < V; ++i) {
    const double mean = n * p[i], sigma = std::sqrt(n * p[i] * (1 - p[i]));
    if (p[i] == 0.0)
      EXPECT_EQ(counts[i], 0) << "token " << i;
    else
      EXPECT_LE(std::fabs(counts[i] - mean), 5 * sigma) << "token " << i << " count " << counts[i];
  }
}

TEST(Sampler, SamplesMatchTheSoftmaxDistribution) {
  const std::vector<double> p = {0.1, 0.4, 0.2, 0.3};
  std::vector<float> logits;
  for (double x : p) logits.push_back(float(std::log(x)) + 1.25f);  // shift: softmax ignores it
  expect_distribution(logits, 1.0f, 1.0f, p, 101);

  // Temperature 2: p_i^(1/2), renormalised.
  std::vector<double> p2;
  double z = 0;
  for (double x : p) z += std::sqrt(x);
  for (double x : p) p2.push_back(std::sqrt(x) / z);
  expect_distribution(logits, 2.0f, 1.0f, p2, 102);
}

TEST(Sampler, NucleusKeepsTheSmallestSetReachingTopP) {
  // Sorted: 0.5 (token 1), 0.3 (token 3), 0.15, 0.05. top_p 0.7: 0.5 < 0.7 <= 0.8,
  // so tokens 1 and 3 remain, renormalised to 0.625 and 0.375.
  const std::vector<double> p = {0.05, 0.5, 0.15, 0.3};
  std::vector<float> logits;
  for (double x : p) logits.push_back(float(std::log(x)));
  expect_distribution(logits, 1.0f, 0.7f, {0.0, 0.625, 0.0, 0.375}, 103);
  // top_p 0.9: 0.8 < 0.9 <= 0.95 keeps three tokens.
  expect_distribution(logits, 1.0f, 0.9f, {0.0, 0.5 / 0.95, 0.15 / 0.95, 0.3 / 0.95}, 104);
}

TEST(Sampler, SameSeedSameTokens) {
  Rng data(3);
  std::vector<float> l(37);
  for (float& x : l) x = data.normal();
  auto draws = [&](uint64_t seed, float top_p) {
    Rng rng(seed);
    std::vector<int> out;
    for (int i = 0; i < 200; ++i) out.push_back(sample_next(l.data(), 37, 0.8f, top_p, rng));
    return out;
  };
  EXPECT_EQ(draws(5, 1.0f), draws(5, 1.0f));
  EXPECT_EQ(draws(5, 0.9f), draws(5, 0.9f));
  EXPECT_NE(draws(5, 1.0f), draws(6, 1.0f));
}

TEST(Sampler, RejectsBadSettingsNamingTheFlag) {
  const std::vector<float> l = {0.0f, 1.0f};
  Rng rng(1);
  auto message = [&](float temperature, float top_p) -> std::string {
    try {
      sample_next(l.data(), 2, temperature, top_p, rng);
    } catch (const InputError& e) {
      return e.what();
    }
    return "no InputError";
  };
  for (float t : {-0.1f, -INFINITY, INFINITY, NAN})
    EXPECT_NE(message(t, 1.0f).find("--temperature"), std::string::npos) << t;
  for (float p : {0.0f, -0.5f, 1.5f, NAN})
    EXPECT_NE(message(1.0f, p).find("--top-p"), std::string::npos) << p;
  EXPECT_NO_THROW(validate_sampling(0.0f, 1.0f));
  const std::vector<float> broken = {0.0f, NAN};
  EXPECT_THROW(sample_next(broken.data(), 2, 1.0f, 1.0f, rng), RuntimeError);
}

}  // namespace
}  // namespace kiln
