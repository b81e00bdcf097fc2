// KV-cache decoding through the Backend (src/nn/decoder.h, src/infer/generator.h)
// against the fp64 whole-model oracle and the fp32 decoding oracle,
// and the samplers (src/infer/sampler.h) against the distributions they promise.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <tuple>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cuda_factory.h"
#include "core/cpu_features.h"
#include "infer/generator.h"
#include "nn/decoder.h"
#include "infer/sampler.h"
#include "model/param_layout.h"
#include "reference/compare.h"
#include "reference/reference_model.h"
#include "reference/ref_generator.h"

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

// Where the decoder runs: a backend kind and its GEMM dtype.
enum class Where { cpu_fp32, cpu_bf16, cuda_fp32, cuda_bf16 };
const char* where_name(Where w) {
  switch (w) {
    case Where::cpu_fp32: return "cpu_fp32";
    case Where::cpu_bf16: return "cpu_bf16";
    case Where::cuda_fp32: return "Cuda_fp32";  // "Cuda" marks GPU tests (scripts/test-skips.sh)
    default: return "Cuda_bf16";
  }
}
DType where_dtype(Where w) {
  return w == Where::cpu_fp32 || w == Where::cuda_fp32 ? DType::f32 : DType::bf16;
}

// The backend for `w`, or null with the reason it cannot exist on this machine.
std::unique_ptr<Backend> backend_for(Where w, std::string* why) {
  if (w == Where::cpu_fp32 || w == Where::cpu_bf16) {
    if (w == Where::cpu_bf16 && active_isa() != Isa::avx512) {
      *why = std::string("bf16 GEMMs need AVX-512 (ISA here: ") + isa_name(active_isa()) + ")";
      return nullptr;
    }
    return std::make_unique<CpuBackend>(CpuBackendOptions{where_dtype(w), 0});
  }
  return make_cuda_backend(where_dtype(w), why);
}

// A Generator on its own backend with its own upload of `params`.
struct TestGenerator {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DeviceWeights> weights;
  std::unique_ptr<Generator> g;
  TestGenerator(std::unique_ptr<Backend> b, const ModelConfig& c, const std::vector<float>& params,
                int max_len, int prefill_chunk = 256,
                WeightFormat format = WeightFormat::compute)
      : backend(std::move(b)),
        weights(std::make_unique<DeviceWeights>(*backend, c, params.data(), format)),
        g(std::make_unique<Generator>(*backend, c, weights->view(), max_len, prefill_chunk)) {}
};
TestGenerator cpu_generator(const ModelConfig& c, const std::vector<float>& params, int max_len) {
  return TestGenerator(std::make_unique<CpuBackend>(CpuBackendOptions{DType::f32, 0}), c, params,
                       max_len);
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
std::vector<std::vector<float>> incremental_logits(ref::RefGenerator& g,
                                                   const std::vector<int>& tokens) {
  g.reset();
  std::vector<std::vector<float>> rows;
  for (size_t t = 0; t < tokens.size(); ++t) {
    const float* logits = g.forward(tokens[t], int(t));
    rows.emplace_back(logits, logits + g.config().vocab_size);
  }
  return rows;
}

// Logits after each prefix, from prefilling tokens[0..split) in one pass and then
// the rest token by token: rows [split-1 .. T-1].
std::vector<std::vector<float>> prefilled_logits(Generator& g, const std::vector<int>& tokens,
                                                 int split) {
  g.reset();
  std::vector<std::vector<float>> rows;
  const float* logits = g.prefill(std::vector<int>(tokens.begin(), tokens.begin() + split));
  rows.emplace_back(logits, logits + g.config().vocab_size);
  for (size_t t = split; t < tokens.size(); ++t) {
    logits = g.forward(tokens[t], int(t));
    rows.emplace_back(logits, logits + g.config().vocab_size);
  }
  return rows;
}

// Per position: normalized_error of the incremental row against the oracle's row.
std::vector<double> errors_vs_oracle(const std::vector<std::vector<float>>& rows,
                                     const std::vector<double>& want, int V, int first = 0) {
  std::vector<double> errors;
  for (size_t t = 0; t < rows.size(); ++t) {
    std::vector<double> row(want.begin() + (first + t) * V, want.begin() + (first + t + 1) * V);
    errors.push_back(ref::normalized_error(rows[t], row));
  }
  return errors;
}

std::vector<double> oracle_logits(const ModelConfig& c, const std::vector<float>& params,
                                  const std::vector<int>& tokens) {
  return ref::ref_logits(to_ref(c, params), std::vector<int32_t>(tokens.begin(), tokens.end()), 1,
                         int(tokens.size()));
}

// Tolerance for logits with bf16 GEMM operands (fp32 accumulation, fp32 elsewhere).
// Each GEMM rounds both operands to bf16 once (relative error <= u_bf16 each), and
// fp32 accumulation adds only fp32-size error, so a GEMM stage contributes about 2 u
// of relative error to its output. There are 4 GEMM stages per layer and the
// classifier; the stages' rounding errors are independent, so they add in quadrature:
// sqrt(2 (4 L + 1)) u, times derived_tolerance's safety factor 8, plus the fp32 bound.
// For the tiny model: 8 * sqrt(18) * 2^-8 = 0.13 (a wrong model is off by ~1).
double logits_tolerance(const ModelConfig& c, int T, DType dt) {
  if (dt == DType::f32) return logits_tolerance(c, T);
  return ref::derived_tolerance(DType::bf16, std::sqrt(2.0 * (4 * c.n_layers + 1))) +
         logits_tolerance(c, T);
}

// ---------------------------------------------------------------------------------
// Decoding through the Backend == full fp64 forward, at every position: token by
// token, and with the prompt prefilled in one batched pass (in chunks).

struct GeneratorCase {
  const char* name;
  int n_kv_heads;
  bool tie;
  bool qkv_bias = false;  // Qwen2
  bool qk_norm = false;   // Qwen3, with head_dim 16 (q_dim 64 != dim 32)
  bool llama3_rope = false;
};
void PrintTo(const GeneratorCase& c, std::ostream* os) { *os << c.name; }

ModelConfig case_config(const GeneratorCase& gc) {
  ModelConfig c = tiny_config(gc.n_kv_heads, gc.tie);
  c.qkv_bias = gc.qkv_bias;
  c.qk_norm = gc.qk_norm;
  if (gc.qkv_bias) c.model_type = "qwen2";
  if (gc.qk_norm) {
    c.model_type = "qwen3";
    c.head_dim = 16;
  }
  if (gc.llama3_rope) {  // wavelengths on both sides of the original context of 8
    c.rope_theta = 500000.0;
    c.rope_scaling.factor = 8;
    c.rope_scaling.low_freq_factor = 1;
    c.rope_scaling.high_freq_factor = 4;
    c.rope_scaling.original_max_position_embeddings = 8;
  }
  c.validate("test config");
  return c;
}

class GeneratorVsOracle
    : public ::testing::TestWithParam<std::tuple<Where, GeneratorCase>> {};

TEST_P(GeneratorVsOracle, DecodeAndPrefillMatchTheFullForwardAtEveryPosition) {
  const auto [where, gc] = GetParam();
  std::string why;
  std::unique_ptr<Backend> backend = backend_for(where, &why);
  if (!backend) {
    // On the GPU machine (scripts/gpu-check.sh sets KILN_REQUIRE_CUDA=1) a missing
    // device is a failure, not a skip.
    const char* require = std::getenv("KILN_REQUIRE_CUDA");
    if (require && std::string(require) == "1" && where != Where::cpu_bf16) FAIL() << why;
    GTEST_SKIP() << why;
  }
  const ModelConfig c = case_config(gc);
  const int T = 13;
  const std::vector<float> params = test_params(c, 11 + gc.n_kv_heads + 10 * gc.tie);
  const std::vector<int> tokens = random_tokens(c.vocab_size, T, 5);
  const std::vector<double> want = oracle_logits(c, params, tokens);
  ASSERT_EQ(want.size(), size_t(T) * c.vocab_size);
  const DType dt = where_dtype(where);
  const double tol = logits_tolerance(c, T, dt);

  // Prefill chunks of 4: the 9-token prompt goes in as 4 + 4 + 1.
  TestGenerator t(std::move(backend), c, params, c.max_seq_len, 4);
  Generator& g = *t.g;
  const std::vector<double> errors =
      errors_vs_oracle(incremental_logits(g, tokens), want, c.vocab_size);
  for (int i = 0; i < T; ++i) EXPECT_LE(errors[i], tol) << "token by token, position " << i;
  EXPECT_EQ(g.filled(), T);
  const int split = 9;
  const std::vector<double> prefill_errors =
      errors_vs_oracle(prefilled_logits(g, tokens, split), want, c.vocab_size, split - 1);
  for (size_t i = 0; i < prefill_errors.size(); ++i)
    EXPECT_LE(prefill_errors[i], tol) << "prefilled, position " << split - 1 + i;
  std::printf("%s %s: max normalized error %.3g token by token, %.3g prefilled (tolerance %.3g)\n",
              where_name(where), gc.name, *std::max_element(errors.begin(), errors.end()),
              *std::max_element(prefill_errors.begin(), prefill_errors.end()), tol);
}

const GeneratorCase kCases[] = {
    {"kv2_untied", 2, false},
    {"kv2_tied", 2, true},
    {"kv1_untied", 1, false},
    {"kv4_tied", 4, true},
    {"qwen2_bias", 2, true, true},
    {"qwen3_qk_norm", 2, true, false, true},
    {"llama3_rope", 2, false, false, false, true},
};
INSTANTIATE_TEST_SUITE_P(
    Models, GeneratorVsOracle,
    ::testing::Combine(::testing::Values(Where::cpu_fp32, Where::cpu_bf16, Where::cuda_fp32,
                                         Where::cuda_bf16),
                       ::testing::ValuesIn(kCases)),
    [](const auto& info) {
      return std::string(where_name(std::get<0>(info.param))) + "_" +
             std::get<1>(info.param).name;
    });

// Int8 weights (W8A8, backend/int8_weights.h): every GEMM stage quantizes both of
// its operands per group of 64 values, each value by at most half a step, max/254
// of its group. A group's max is at most sqrt(64) = 8 times its RMS, so an
// operand's relative 2-norm error is at most 8/254 (a worst case, no safety factor
// needed). As for bf16, the 2 (4 L + 1) operand errors are independent and add in
// quadrature; fp32 arithmetic adds its own bound. For the tiny model:
// sqrt(18) * 8/254 = 0.134 (a wrong model is off by ~1).
double int8_logits_tolerance(const ModelConfig& c, int T) {
  return std::sqrt(2.0 * (4 * c.n_layers + 1)) * 8.0 / 254.0 + logits_tolerance(c, T);
}

TEST(GeneratorVsOracle, Int8WeightsStayWithinTheQuantizationBound) {
  for (const GeneratorCase& gc : kCases) {
    const ModelConfig c = case_config(gc);
    const int T = 13;
    const std::vector<float> params = test_params(c, 11 + gc.n_kv_heads + 10 * gc.tie);
    const std::vector<int> tokens = random_tokens(c.vocab_size, T, 5);
    const std::vector<double> want = oracle_logits(c, params, tokens);
    const double tol = int8_logits_tolerance(c, T);
    TestGenerator t(std::make_unique<CpuBackend>(CpuBackendOptions{DType::f32, 0}), c, params,
                    c.max_seq_len, 4, WeightFormat::int8);
    const std::vector<double> errors =
        errors_vs_oracle(incremental_logits(*t.g, tokens), want, c.vocab_size);
    const std::vector<double> prefill_errors =
        errors_vs_oracle(prefilled_logits(*t.g, tokens, 9), want, c.vocab_size, 8);
    for (int i = 0; i < T; ++i) EXPECT_LE(errors[i], tol) << gc.name << " position " << i;
    for (size_t i = 0; i < prefill_errors.size(); ++i)
      EXPECT_LE(prefill_errors[i], tol) << gc.name << " prefilled, position " << 8 + i;
    std::printf("int8 %s: max normalized error %.3g token by token, %.3g prefilled (bound %.3g)\n",
                gc.name, *std::max_element(errors.begin(), errors.end()),
                *std::max_element(prefill_errors.begin(), prefill_errors.end()), tol);
  }
}

// Int8 weights on a backend without int8 layers, or with bf16 activations: InputError.
TEST(GeneratorVsOracle, Int8WeightsNeedFp32ActivationsOnTheCpu) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 3);
  if (active_isa() == Isa::avx512) {
    CpuBackend bf16(CpuBackendOptions{DType::bf16, 0});
    EXPECT_THROW(DeviceWeights(bf16, c, params.data(), WeightFormat::int8), InputError);
  }
  CpuBackend fp32(CpuBackendOptions{DType::f32, 0});
  EXPECT_TRUE(fp32.caps().int8_linear);
  EXPECT_NO_THROW(DeviceWeights(fp32, c, params.data(), WeightFormat::int8));
  // A non-finite weight: InputError before anything is allocated (ASan checks the leak).
  std::vector<float> bad = params;
  bad[ParamLayout(c).layer(1).w2 + 3] = std::nanf("");
  EXPECT_THROW(DeviceWeights(fp32, c, bad.data(), WeightFormat::int8), InputError);
}

// The comparison above can fail: a decoder whose RoPE uses another theta, or one
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
  TestGenerator g_theta = cpu_generator(wrong_theta, params, c.max_seq_len);
  const auto e_theta = errors_vs_oracle(incremental_logits(*g_theta.g, tokens), want, c.vocab_size);
  EXPECT_LE(e_theta[0], tol);  // RoPE at position 0 is the identity
  EXPECT_GT(*std::max_element(e_theta.begin() + 1, e_theta.end()), 100 * tol);

  std::vector<int> other = tokens;
  other[0] = (tokens[0] + 1) % c.vocab_size;
  TestGenerator g = cpu_generator(c, params, c.max_seq_len);
  const auto e_ctx = errors_vs_oracle(incremental_logits(*g.g, other), want, c.vocab_size);
  for (int t = 1; t < T; ++t) EXPECT_GT(e_ctx[t], 100 * tol) << "position " << t;
}

// The fp32 decoding oracle (tests/reference/ref_generator.h, plain loops) agrees
// with the fp64 forward and with the Backend decoder, and greedy decoding picks the
// same tokens in both.
TEST(GeneratorVsOracle, BackendDecoderAgreesWithTheFp32DecodingOracle) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 41);
  const std::vector<int> tokens = random_tokens(c.vocab_size, 12, 9);
  const std::vector<double> want = oracle_logits(c, params, tokens);
  const double tol = logits_tolerance(c, 12);
  ref::RefGenerator oracle(c, params.data(), c.max_seq_len);
  const auto oracle_errors = errors_vs_oracle(incremental_logits(oracle, tokens), want, c.vocab_size);
  for (size_t t = 0; t < oracle_errors.size(); ++t) EXPECT_LE(oracle_errors[t], tol) << t;

  TestGenerator g = cpu_generator(c, params, c.max_seq_len);
  std::vector<int> ours, theirs;
  generate(*g.g, {1, 4}, 14, 0.0f, 1.0f, 0, [&](int t) {
    ours.push_back(t);
    return true;
  });
  const float* logits = oracle.prefill({1, 4});
  for (int i = 0; i < 14; ++i) {
    theirs.push_back(argmax(logits, c.vocab_size));
    logits = oracle.forward(theirs.back(), 2 + i);
  }
  EXPECT_EQ(ours, theirs);
}

// ---------------------------------------------------------------------------------
// Cache bookkeeping: reset, rewind, thread count, several sequences.

TEST(Generator, ResetAndRewindGiveIdenticalLogits) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 17);
  const std::vector<int> tokens = random_tokens(c.vocab_size, 9, 6);
  TestGenerator t = cpu_generator(c, params, 12);
  Generator& g = *t.g;
  const auto first = incremental_logits(g, tokens);
  EXPECT_EQ(incremental_logits(g, tokens), first);  // reset() forgets everything

  // Rewind to position 4 with another token, then go on: the same as a fresh run.
  std::vector<int> branched = tokens;
  branched[4] = (tokens[4] + 7) % c.vocab_size;
  std::vector<std::vector<float>> rewound;
  for (int i = 4; i < 9; ++i) {
    const float* l = g.forward(branched[i], i);
    rewound.emplace_back(l, l + c.vocab_size);
  }
  const auto fresh = incremental_logits(g, branched);
  for (int i = 4; i < 9; ++i) EXPECT_EQ(rewound[i - 4], fresh[i]) << "position " << i;
}

// Decode and prefill at 1 and 2 threads give the same logits: every output element
// of the decode kernels is summed by one thread in a fixed order. The model is big
// enough that the attention takes its parallel path from position 32 on.
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
  // CpuBackend's thread count is OpenMP's (process-wide): set it around each run.
  TestGenerator t = cpu_generator(c, params, c.max_seq_len);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto one = incremental_logits(*t.g, tokens);
  const auto one_prefilled = prefilled_logits(*t.g, tokens, 30);
  omp_set_num_threads(2);
  const auto two = incremental_logits(*t.g, tokens);
  const auto two_prefilled = prefilled_logits(*t.g, tokens, 30);
  omp_set_num_threads(threads);
  EXPECT_EQ(one, two);
  EXPECT_EQ(one_prefilled, two_prefilled);
}

// Several sequences decoded as one batch (M = B GEMMs, one cache slot each, each
// at its own position) give each sequence the logits it gets alone.
TEST(Decoder, BatchedSequencesMatchTheirSingleRuns) {
  const ModelConfig c = case_config(kCases[5]);  // Qwen3-shaped: q/k norms, head_dim 16
  const std::vector<float> params = test_params(c, 43);
  CpuBackend backend({DType::f32, 0});
  DeviceWeights weights(backend, c, params.data());
  const int B = 3, steps = 5;
  const std::vector<std::vector<int>> prompts = {
      random_tokens(c.vocab_size, 2, 1), random_tokens(c.vocab_size, 6, 2),
      random_tokens(c.vocab_size, 4, 3)};
  const std::vector<std::vector<int>> next = {random_tokens(c.vocab_size, steps, 4),
                                              random_tokens(c.vocab_size, steps, 5),
                                              random_tokens(c.vocab_size, steps, 6)};
  Decoder batch(backend, c, weights.view(), B, c.max_seq_len);
  std::vector<int32_t> pos(B);
  for (int b = 0; b < B; ++b) {
    const std::vector<int32_t> p(prompts[b].begin(), prompts[b].end());
    batch.prefill(b, p.data(), int(p.size()), 0);
    pos[b] = int32_t(p.size());
  }
  std::vector<std::vector<std::vector<float>>> batched(B);
  for (int s = 0; s < steps; ++s) {
    std::vector<int32_t> tok(B);
    for (int b = 0; b < B; ++b) tok[b] = next[b][s];
    const float* logits = batch.decode(tok.data(), pos.data(), B);
    for (int b = 0; b < B; ++b) {
      batched[b].emplace_back(logits + size_t(b) * c.vocab_size,
                              logits + size_t(b + 1) * c.vocab_size);
      ++pos[b];
    }
  }
  const double tol = logits_tolerance(c, 11);
  for (int b = 0; b < B; ++b) {
    std::vector<int> all = prompts[b];
    all.insert(all.end(), next[b].begin(), next[b].end());
    const std::vector<double> want = oracle_logits(c, params, all);
    const auto errors =
        errors_vs_oracle(batched[b], want, c.vocab_size, int(prompts[b].size()));
    for (int s = 0; s < steps; ++s) EXPECT_LE(errors[s], tol) << "sequence " << b << " step " << s;
  }
  std::vector<int32_t> bad_pos = {0, 0, 9};  // slot 2 holds 4 + 5 = 9 positions: ok
  std::vector<int32_t> tok = {1, 1, 1};
  EXPECT_NO_THROW(batch.decode(tok.data(), bad_pos.data(), B));
  bad_pos[2] = 11;  // skips position 10
  EXPECT_THROW(batch.decode(tok.data(), bad_pos.data(), B), InputError);
  EXPECT_THROW(batch.decode(tok.data(), pos.data(), B + 1), InputError);
  EXPECT_THROW(batch.prefill(B, tok.data(), 1, 0), InputError);
}

TEST(Generator, RejectsBadTokensPositionsAndLengths) {
  const ModelConfig c = tiny_config(2, true);
  const std::vector<float> params = test_params(c, 19);
  TestGenerator t = cpu_generator(c, params, 4);
  Generator& g = *t.g;
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
  EXPECT_THROW(g.prefill({1, c.vocab_size}), InputError);
  EXPECT_THROW(cpu_generator(c, params, 0), InputError);
  EXPECT_THROW(cpu_generator(c, params, c.max_seq_len + 1), InputError);
  CpuBackend backend({DType::f32, 0});
  EXPECT_THROW(DeviceWeights(backend, c, nullptr), InputError);
  try {
    g.forward(c.vocab_size, 0);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("token id out of range"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------
// generate(): streaming, stopping, determinism.

TEST(Generate, GreedyFollowsArgmaxAndStopsWhereAsked) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 23);
  TestGenerator t = cpu_generator(c, params, 12);
  Generator& g = *t.g;
  const std::vector<int> prompt = {1, 5, 9};

  std::vector<int> streamed;
  GenerationStats s = generate(g, prompt, 6, 0.0f, 1.0f, 0, [&](int tok) {
    streamed.push_back(tok);
    return true;
  });
  ASSERT_EQ(streamed.size(), 6u);
  EXPECT_EQ(s.generated_tokens, 6);
  EXPECT_EQ(s.prompt_tokens, 3);
  EXPECT_FALSE(s.stopped_by_callback);
  EXPECT_EQ(g.filled(), 9);  // every generated token was fed

  // The same by hand: feed, take the argmax, feed it, ...
  TestGenerator m = cpu_generator(c, params, 12);
  Generator& manual = *m.g;
  const float* logits = manual.prefill(prompt);
  for (int i = 0; i < 6; ++i) {
    const int tok = argmax(logits, c.vocab_size);
    EXPECT_EQ(streamed[i], tok) << "step " << i;
    logits = manual.forward(tok, 3 + i);
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
  TestGenerator t = cpu_generator(c, params, 16);
  Generator& g = *t.g;
  auto run = [&](uint64_t seed) {
    std::vector<int> out;
    generate(g, {2}, 15, 1.0f, 0.9f, seed, [&](int tok) {
      out.push_back(tok);
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

// Top-k keeps the k largest logits (ties at the k-th value too) and samples among
// them in proportion to their softmax; 0 and k >= V change nothing.
TEST(Sampler, TopKKeepsTheKLargestWithTies) {
  const std::vector<float> l = {0.5f, 2.0f, -1.0f, 1.0f, 1.0f, 3.0f};
  Rng rng(7);
  std::vector<int> counts(l.size(), 0);
  const int draws = 6000;
  for (int i = 0; i < draws; ++i) ++counts[sample_next(l.data(), 6, 1.0f, 1.0f, rng, 2)];
  EXPECT_EQ(counts[0] + counts[2] + counts[3] + counts[4], 0);  // outside the top 2
  // p(5) = e^3 / (e^3 + e^2) = 0.731; binomial std over 6000 draws is 0.0057.
  EXPECT_NEAR(counts[5] / double(draws), std::exp(3.0) / (std::exp(3.0) + std::exp(2.0)), 0.03);
  // k = 3: the 3rd largest is 1.0, held by ids 3 and 4, so both stay (4 tokens).
  std::fill(counts.begin(), counts.end(), 0);
  for (int i = 0; i < draws; ++i) ++counts[sample_next(l.data(), 6, 1.0f, 1.0f, rng, 3)];
  EXPECT_GT(counts[3], 0);
  EXPECT_GT(counts[4], 0);
  EXPECT_EQ(counts[0] + counts[2], 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sample_next(l.data(), 6, 1.0f, 1.0f, rng, 1), 5);
  EXPECT_THROW(sample_next(l.data(), 6, 1.0f, 1.0f, rng, -1), InputError);
}

// transformers' rule: positive logits of seen ids divided by the penalty, negative
// ones multiplied; each id once, however often it was seen.
TEST(Sampler, RepetitionPenaltyScalesSeenLogitsOnce) {
  std::vector<float> l = {2.0f, -2.0f, 1.0f, 4.0f};
  const std::vector<int> history = {0, 1, 0, 0, 3};
  apply_repetition_penalty(l.data(), 4, history.data(), history.size(), 2.0f);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 1.0f, 2.0f}));
  apply_repetition_penalty(l.data(), 4, history.data(), history.size(), 1.0f);
  EXPECT_EQ(l, (std::vector<float>{1.0f, -4.0f, 1.0f, 2.0f}));
  EXPECT_THROW(apply_repetition_penalty(l.data(), 4, history.data(), 1, 0.0f), InputError);
  EXPECT_THROW(apply_repetition_penalty(l.data(), 4, history.data(), 1, NAN), InputError);
}

// generate() with reuse_cache prefills only past the common prefix and gives the
// same tokens as a fresh run.
TEST(Generate, ReusedCacheGivesTheSameTokensAsAFreshRun) {
  const ModelConfig c = tiny_config(2, false);
  const std::vector<float> params = test_params(c, 37);
  TestGenerator t = cpu_generator(c, params, 16);
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  auto run = [&](const std::vector<int>& prompt, bool reuse, GenerationStats* stats) {
    std::vector<int> out;
    greedy.reuse_cache = reuse;
    *stats = generate(*t.g, prompt, 4, greedy, [&](int tok) {
      out.push_back(tok);
      return true;
    });
    return out;
  };
  GenerationStats s;
  const std::vector<int> first = run({1, 2, 3}, false, &s);
  std::vector<int> longer = {1, 2, 3};
  longer.insert(longer.end(), first.begin(), first.end());
  longer.push_back(5);
  const std::vector<int> reused = run(longer, true, &s);
  EXPECT_EQ(s.reused_tokens, 7);  // the 3 prompt tokens and 4 generated ones
  GenerationStats fresh_stats;
  EXPECT_EQ(run(longer, false, &fresh_stats), reused);
  EXPECT_EQ(fresh_stats.reused_tokens, 0);
  // A prompt that diverges early rewinds the cache to the common prefix.
  const std::vector<int> branched = {1, 9, 9};
  const std::vector<int> b1 = run(branched, true, &s);
  EXPECT_EQ(s.reused_tokens, 1);
  EXPECT_EQ(run(branched, false, &s), b1);
}

// Several prompts as one batch give each prompt the tokens it gets alone (greedy),
// including a sequence that stops early while the others go on.
TEST(Generate, BatchOfPromptsMatchesSingleRuns) {
  const ModelConfig c = case_config(kCases[4]);  // Qwen2-shaped: q/k/v biases
  const std::vector<float> params = test_params(c, 47);
  TestGenerator t = cpu_generator(c, params, 16);
  const std::vector<std::vector<int>> prompts = {{1, 2}, {3, 4, 5, 6, 7}, {8}};
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  std::vector<std::vector<int>> alone;
  for (const auto& p : prompts) {
    std::vector<int> out;
    generate(*t.g, p, 6, greedy, [&](int tok) {
      out.push_back(tok);
      return true;
    });
    alone.push_back(out);
  }
  Decoder decoder(*t.backend, c, t.weights->view(), 3, 16);
  int calls_seq1 = 0;
  GenerationStats stats;
  const auto batched = generate_batch(
      decoder, prompts, 6, greedy,
      [&](int seq, int) { return seq != 1 || ++calls_seq1 <= 2; }, &stats);
  EXPECT_EQ(batched[0], alone[0]);
  EXPECT_EQ(batched[1], std::vector<int>(alone[1].begin(), alone[1].begin() + 2));
  EXPECT_EQ(batched[2], alone[2]);
  EXPECT_EQ(stats.prompt_tokens, 8);
  EXPECT_THROW(generate_batch(decoder, {{1}, {2}, {3}, {4}}, 2, greedy,
                              [](int, int) { return true; }),
               InputError);
}

}  // namespace
}  // namespace kiln
