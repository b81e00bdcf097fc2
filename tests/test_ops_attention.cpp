// Causal GQA attention: CpuBackend::attention_forward / attention_backward against
// the fp64 oracle (tests/reference/ref_attention.cpp), on every ISA path this
// machine has, odd sequence lengths, head dims that are not multiples of 16, and
// GQA ratios 1, 2, 4. Tolerances come from fp32's unit roundoff and the sizes.
#include <gtest/gtest.h>
#include <omp.h>
#include <sys/resource.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/rng.h"
#include "reference/compare.h"
#include "reference/reference_ops.h"

using namespace kiln;
using ref::Vec;

namespace kiln {
// Readable test names in failure messages ("avx2", not a byte dump).
void PrintTo(Isa isa, std::ostream* os) { *os << isa_name(isa); }
}  // namespace kiln

namespace {

struct Shape {
  int B, T, H, Hkv, D;
  int64_t qkv_size() const { return int64_t(B) * T * (H + 2 * Hkv) * D; }
  int64_t out_size() const { return int64_t(B) * T * H * D; }
  int64_t lse_size() const { return int64_t(B) * H * T; }
  auto key() const { return std::make_tuple(B, T, H, Hkv, D); }
};

// Rounding depth of the forward: a length-D dot product for each score (sqrt D),
// two length-T sums (the softmax denominator and P V, sqrt T each), and a few
// single roundings (exp, log, the division by l). The backward chains a second
// pass of the same kind (dP = dO V^T, then dQ, dK, dV sums over T), so twice that.
double forward_depth(const Shape& s) {
  return std::sqrt(double(s.D)) + 2.0 * std::sqrt(double(s.T)) + 4.0;
}
double backward_depth(const Shape& s) { return 2.0 * forward_depth(s); }

// The ISA cap from the environment (KILN_ISA), so the ctest runs with a capped
// ISA only exercise the paths at or below their cap.
Isa env_cap() {
  Isa cap = Isa::avx512;
  const char* env = std::getenv("KILN_ISA");
  if (env && *env) parse_isa(env, &cap);
  return cap;
}

// Why `isa` cannot be tested here, or "" when it can.
std::string unavailable(Isa isa) {
  const CpuFeatures& f = cpu_features();
  if (isa == Isa::avx512 && !f.avx512) return "this CPU has no AVX-512 (F/BW/DQ/VL)";
  if (isa == Isa::avx2 && !f.avx2) return "this CPU has no AVX2 + FMA";
  if (int(isa) > int(env_cap()))
    return std::string("KILN_ISA=") + std::getenv("KILN_ISA") + " caps the kernels below " +
           isa_name(isa);
  return "";
}

// Sets the ISA cap for one test and puts the environment's cap back afterwards.
struct IsaScope {
  explicit IsaScope(Isa isa) { set_isa_cap(isa); }
  ~IsaScope() { set_isa_cap(env_cap()); }
};

// Inputs and fp64 results for one shape, computed once per process.
struct Oracle {
  Vec qkv, dout, out, lse, dqkv;
};

const Oracle& oracle(const Shape& s) {
  static std::map<std::tuple<int, int, int, int, int>, Oracle> cache;
  auto it = cache.find(s.key());
  if (it != cache.end()) return it->second;
  Oracle o;
  const uint64_t seed = uint64_t(s.B) * 1000003u + uint64_t(s.T) * 1009u + uint64_t(s.H) * 101u +
                        uint64_t(s.Hkv) * 11u + uint64_t(s.D);
  // Scale 2 puts score standard deviations near 1: peaked enough that a wrong
  // max, mask or rescale shows, flat enough that every key matters.
  o.qkv = ref::random_vector(s.qkv_size(), seed, 2.0);
  o.dout = ref::random_vector(s.out_size(), seed + 1, 1.0);
  // The oracle sees exactly the fp32 inputs the kernels see.
  o.qkv = ref::to_double(ref::to_float(o.qkv));
  o.dout = ref::to_double(ref::to_float(o.dout));
  ref::attention_forward(o.out, o.lse, o.qkv, s.B, s.T, s.H, s.Hkv, s.D);
  ref::attention_backward(o.dqkv, o.dout, o.qkv, s.B, s.T, s.H, s.Hkv, s.D);
  return cache.emplace(s.key(), std::move(o)).first->second;
}

struct KilnResult {
  std::vector<float> out, lse, dqkv;
};

// Forward then backward, as a training step calls them (backward gets Kiln's own
// out and lse). Outputs start as NaN so an element left unwritten fails the (=) check.
KilnResult run_kiln(CpuBackend& backend, const Shape& s, const std::vector<float>& qkv,
                    const std::vector<float>& dout) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  KilnResult r{std::vector<float>(s.out_size(), nan), std::vector<float>(s.lse_size(), nan),
               std::vector<float>(s.qkv_size(), nan)};
  backend.attention_forward(r.out.data(), r.lse.data(), qkv.data(), s.B, s.T, s.H, s.Hkv, s.D);
  backend.attention_backward(r.dqkv.data(), dout.data(), qkv.data(), r.out.data(), r.lse.data(),
                             s.B, s.T, s.H, s.Hkv, s.D);
  return r;
}

// Splits dqkv [B, T, (H + 2*Hkv)*D] into its q, k and v parts.
template <class T>
void split_parts(const std::vector<T>& dqkv, const Shape& s, std::vector<T>* q, std::vector<T>* k,
                 std::vector<T>* v) {
  const int64_t ld = int64_t(s.H + 2 * s.Hkv) * s.D, nq = int64_t(s.H) * s.D,
                nk = int64_t(s.Hkv) * s.D;
  for (int64_t row = 0; row < int64_t(s.B) * s.T; ++row) {
    const T* r = dqkv.data() + row * ld;
    q->insert(q->end(), r, r + nq);
    k->insert(k->end(), r + nq, r + nq + nk);
    v->insert(v->end(), r + nq + nk, r + ld);
  }
}

double norm(const Vec& v) {
  double s = 0;
  for (double x : v) s += x * x;
  return std::sqrt(s);
}

double diff_norm(const std::vector<float>& got, const Vec& want) {
  if (got.size() != want.size()) return INFINITY;
  double s = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    s += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
  }
  return std::sqrt(s);
}

// Checks out, lse and each part of dqkv against the oracle.
void expect_matches_oracle(const KilnResult& got, const Oracle& want, const Shape& s) {
  const double tol_fwd = ref::derived_tolerance(DType::f32, forward_depth(s));
  const double tol_bwd = ref::derived_tolerance(DType::f32, backward_depth(s));
  EXPECT_LE(ref::normalized_error(got.out, want.out), tol_fwd) << "out";
  EXPECT_LE(ref::normalized_error(got.lse, want.lse), tol_fwd) << "lse";
  std::vector<float> dq, dk, dv;
  Vec wq, wk, wv;
  split_parts(got.dqkv, s, &dq, &dk, &dv);
  split_parts(want.dqkv, s, &wq, &wk, &wv);
  // With T = 1 the softmax has one entry, so dq and dk are exactly zero and a
  // relative error means nothing; they are measured against the whole gradient.
  const double whole = norm(want.dqkv);
  auto relative = [&](const std::vector<float>& g, const Vec& w) {
    return diff_norm(g, w) / std::max(s.T == 1 ? whole : norm(w), 1e-300);
  };
  EXPECT_LE(relative(dq, wq), tol_bwd) << "dq";
  EXPECT_LE(relative(dk, wk), tol_bwd) << "dk";
  EXPECT_LE(relative(dv, wv), tol_bwd) << "dv";
}

// --- every shape on every ISA ---------------------------------------------------
using ShapeParam = std::tuple<Isa, int, int, int, int>;  // isa, T, D, H/Hkv, B

class AttentionShapes : public ::testing::TestWithParam<ShapeParam> {};

TEST_P(AttentionShapes, MatchesFp64Oracle) {
  const auto [isa, T, D, ratio, B] = GetParam();
  if (const std::string why = unavailable(isa); !why.empty()) GTEST_SKIP() << why;
  const Shape s{B, T, 2 * ratio, 2, D};  // two kv heads, so kv-head indexing is exercised
  const Oracle& want = oracle(s);
  IsaScope scope(isa);
  CpuBackend backend;
  const KilnResult got = run_kiln(backend, s, ref::to_float(want.qkv), ref::to_float(want.dout));
  expect_matches_oracle(got, want, s);
}

std::string shape_name(const ::testing::TestParamInfo<ShapeParam>& info) {
  const auto [isa, T, D, ratio, B] = info.param;
  return std::string(isa_name(isa)) + "_T" + std::to_string(T) + "_D" + std::to_string(D) + "_gqa" +
         std::to_string(ratio) + "_B" + std::to_string(B);
}

INSTANTIATE_TEST_SUITE_P(Ops, AttentionShapes,
                         ::testing::Combine(::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                                            ::testing::Values(1, 7, 257),
                                            ::testing::Values(8, 18, 64),
                                            ::testing::Values(1, 2, 4), ::testing::Values(1, 2)),
                         shape_name);

// --- determinism, long sequences --------------------------------------------------
class AttentionIsa : public ::testing::TestWithParam<Isa> {};

// Each task owns its output rows and sums in a fixed order, so reruns, and runs
// with another thread count, give the same bits.
TEST_P(AttentionIsa, BitwiseDeterministic) {
  const Isa isa = GetParam();
  if (const std::string why = unavailable(isa); !why.empty()) GTEST_SKIP() << why;
  IsaScope scope(isa);
  CpuBackend backend;
  for (const Shape& s : {Shape{2, 257, 4, 2, 18}, Shape{2, 130, 4, 1, 64}}) {
    const std::vector<float> qkv = ref::to_float(ref::random_vector(s.qkv_size(), 5, 2.0));
    const std::vector<float> dout = ref::to_float(ref::random_vector(s.out_size(), 6, 1.0));
    const KilnResult a = run_kiln(backend, s, qkv, dout);
    const KilnResult b = run_kiln(backend, s, qkv, dout);
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const KilnResult c = run_kiln(backend, s, qkv, dout);
    omp_set_num_threads(threads);
    for (const KilnResult* other : {&b, &c}) {
      EXPECT_EQ(0, std::memcmp(a.out.data(), other->out.data(), a.out.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(a.lse.data(), other->lse.data(), a.lse.size() * sizeof(float)));
      EXPECT_EQ(0, std::memcmp(a.dqkv.data(), other->dqkv.data(), a.dqkv.size() * sizeof(float)));
    }
  }
}

// A longer sequence than the shape grid (many key blocks per query row) against
// the full oracle, with GQA.
TEST_P(AttentionIsa, LongSequenceT1024) {
  const Isa isa = GetParam();
  if (const std::string why = unavailable(isa); !why.empty()) GTEST_SKIP() << why;
  const Shape s{1, 1024, 2, 1, 64};
  const Oracle& want = oracle(s);
  IsaScope scope(isa);
  CpuBackend backend;
  const KilnResult got = run_kiln(backend, s, ref::to_float(want.qkv), ref::to_float(want.dout));
  expect_matches_oracle(got, want, s);
}

INSTANTIATE_TEST_SUITE_P(Ops, AttentionIsa, ::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return isa_name(info.param);
                         });

// --- bad shapes ---------------------------------------------------------------------
TEST(Attention, RejectsHeadsNotAMultipleOfKvHeads) {
  CpuBackend backend;
  std::vector<float> qkv(1 * 4 * (3 + 2 * 2) * 8), out(4 * 3 * 8), lse(3 * 4), dqkv(qkv.size());
  try {
    backend.attention_forward(out.data(), lse.data(), qkv.data(), 1, 4, 3, 2, 8);
    FAIL() << "accepted H=3 with Hkv=2";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("n_kv_heads"), std::string::npos) << e.what();
  }
  EXPECT_THROW(backend.attention_backward(dqkv.data(), out.data(), qkv.data(), out.data(),
                                          lse.data(), 1, 4, 3, 2, 8),
               InputError);
  EXPECT_THROW(backend.attention_forward(out.data(), lse.data(), qkv.data(), 1, 4, 2, 2, 0),
               InputError);
}

}  // namespace

namespace {

// Stories110M's longest context (T = 4096, D = 64) with one head (the fp64 oracle
// costs seconds per head here; GQA at length is covered at T = 1024): runs in O(T)
// memory per thread, stays finite, and matches the full oracle. One ISA (the best
// allowed here): the grid above checks each ISA's kernels, this checks scale.
TEST(Attention, LongSequenceT4096) {
  const Shape s{1, 4096, 1, 1, 64};
  const Oracle& want = oracle(s);
  CpuBackend backend;
  const KilnResult got = run_kiln(backend, s, ref::to_float(want.qkv), ref::to_float(want.dout));
  for (const std::vector<float>* v : {&got.out, &got.lse, &got.dqkv})
    for (float x : *v) ASSERT_TRUE(std::isfinite(x)) << "non-finite value at T=4096";
  expect_matches_oracle(got, want, s);
}

// Stories110M's attention (12 heads of 64) at T=4096: the memory beyond the inputs and
// outputs stays O(T) per thread. One fp32 heads x T x T score matrix alone would be
// 805 MB; the bound below is the 50 MB of outputs (out, lse, dqkv) plus 128 MB of slack.
TEST(Attention, Stories110MShapeAtT4096NeedsNoTxTMemory) {
  const Shape s{1, 4096, 12, 12, 64};
  Rng rng(4096, 2);
  std::vector<float> qkv(s.qkv_size()), dout(s.out_size());
  for (float& x : qkv) x = rng.uniform() - 0.5f;
  for (float& x : dout) x = rng.uniform() - 0.5f;
  rusage before{};
  getrusage(RUSAGE_SELF, &before);
  CpuBackend backend;
  const KilnResult got = run_kiln(backend, s, qkv, dout);
  rusage after{};
  getrusage(RUSAGE_SELF, &after);
  const double io_mb = double(s.out_size() + s.lse_size() + s.qkv_size()) * 4 / (1 << 20);
  const double grown_mb = double(after.ru_maxrss - before.ru_maxrss) / 1024.0;  // ru_maxrss is KiB
  EXPECT_LT(grown_mb, io_mb + 128.0) << "outputs " << io_mb << " MB";
  for (const std::vector<float>* v : {&got.out, &got.lse, &got.dqkv})
    for (float x : *v) ASSERT_TRUE(std::isfinite(x)) << "non-finite value at T=4096";
}

}  // namespace

namespace {

// --- decoding over a KV cache (attention_decode, rope_forward_at) --------------------
// Three sequences at different positions, each with its own cache slot whose earlier
// positions hold values from "before"; T = 1 is the decode step, T = 5 a prefill chunk.
// The cache writes must be exact copies; the outputs match the fp64 oracle within the
// forward's rounding depth (with T replaced by the attended length).
TEST(AttentionDecode, MatchesFp64OracleAndWritesTheCache) {
  for (const auto& [T, D, ratio] : std::vector<std::tuple<int, int, int>>{
           {1, 64, 1}, {1, 18, 2}, {5, 8, 4}, {5, 64, 2}}) {
    const int B = 3, Hkv = 2, H = Hkv * ratio, max_len = 40;
    const std::vector<int32_t> pos = {0, 17, 40 - T};
    const int64_t row = int64_t(H + 2 * Hkv) * D, cache = int64_t(B) * max_len * Hkv * D;
    Vec k_cache = ref::random_vector(cache, 71, 1.0), v_cache = ref::random_vector(cache, 72, 1.0);
    const Vec qkv = ref::random_vector(B * T * row, 73, 2.0);
    std::vector<float> k_got = ref::to_float(k_cache), v_got = ref::to_float(v_cache);
    Vec k_want = ref::to_double(k_got), v_want = ref::to_double(v_got), out_want;
    const std::vector<float> qkv_f = ref::to_float(qkv);
    ref::attention_decode(out_want, k_want, v_want, ref::to_double(qkv_f), B, T, H, Hkv, D, pos,
                          max_len);
    CpuBackend backend;
    std::vector<float> out(size_t(B) * T * H * D, std::numeric_limits<float>::quiet_NaN());
    backend.attention_decode(out.data(), k_got.data(), v_got.data(), qkv_f.data(), B, T, H, Hkv, D,
                             pos.data(), max_len);
    EXPECT_EQ(ref::to_double(k_got), k_want) << "T " << T << " D " << D;
    EXPECT_EQ(ref::to_double(v_got), v_want) << "T " << T << " D " << D;
    const double depth = std::sqrt(double(D)) + 2.0 * std::sqrt(double(max_len)) + 4.0;
    EXPECT_LE(ref::normalized_error(out, out_want), ref::derived_tolerance(DType::f32, depth))
        << "T " << T << " D " << D << " gqa " << ratio;
    // A check that can fail: a query at another position attends to other keys.
    std::vector<int32_t> shifted = pos;
    shifted[1] -= 1;
    std::vector<float> k2 = ref::to_float(k_cache), v2 = ref::to_float(v_cache), out2(out.size());
    backend.attention_decode(out2.data(), k2.data(), v2.data(), qkv_f.data(), B, T, H, Hkv, D,
                             shifted.data(), max_len);
    EXPECT_GT(ref::normalized_error(out2, out_want), 1e-3);
  }
  CpuBackend backend;
  std::vector<float> buf(4096);
  const std::vector<int32_t> beyond = {38};
  EXPECT_THROW(backend.attention_decode(buf.data(), buf.data(), buf.data(), buf.data(), 1, 3, 2, 2,
                                        8, beyond.data(), 40),
               InputError);
}

// rope_forward_at with per-sequence positions == rope_forward of each sequence alone.
TEST(AttentionDecode, RopeAtPositionsMatchesTheOracle) {
  const int B = 3, T = 4, H = 4, Hkv = 2, D = 16, max_len = 64;
  const std::vector<int32_t> pos = {0, 9, 60};
  const RopeParams rope(10000.0);
  const int64_t row = int64_t(H + 2 * Hkv) * D;
  const std::vector<float> qkv = ref::to_float(ref::random_vector(B * T * row, 81, 1.0));
  std::vector<float> got = qkv;
  CpuBackend backend;
  backend.rope_forward_at(got.data(), B, T, H, Hkv, D, rope, pos.data(), max_len);
  for (int b = 0; b < B; ++b) {
    Vec want(qkv.begin() + b * T * row, qkv.begin() + (b + 1) * T * row);
    ref::rope_forward(want, 1, T, H, Hkv, D, rope, pos[b]);
    const std::vector<float> got_b(got.begin() + b * T * row, got.begin() + (b + 1) * T * row);
    EXPECT_LE(ref::normalized_error(got_b, want), ref::derived_tolerance(DType::f32, 4))
        << "sequence " << b;
  }
  const std::vector<int32_t> beyond = {0, 9, 61};
  EXPECT_THROW(backend.rope_forward_at(got.data(), B, T, H, Hkv, D, rope, beyond.data(), max_len),
               InputError);
}

}  // namespace
