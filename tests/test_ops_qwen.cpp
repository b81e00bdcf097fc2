// The CPU backend's Qwen attention extras (q/k/v bias forward / backward, per-head
// q/k RMSNorm forward / backward) against the fp64 oracle (tests/reference/ref_qwen.cpp)
// on odd shapes, with tolerances derived from the fp32 unit roundoff and the depth of
// each computation (tests/reference/compare.h), and bitwise independence of the
// thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "reference/compare.h"
#include "reference/reference_ops.h"

using namespace kiln;
using ref::Vec;

namespace {

std::vector<float> random_floats(int64_t n, uint64_t seed, double scale = 1.0) {
  return ref::to_float(ref::random_vector(n, seed, scale));
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();

void expect_close(const std::vector<float>& got, const Vec& want, double depth,
                  const std::string& what) {
  const double err = ref::normalized_error(got, want);
  EXPECT_LE(err, ref::derived_tolerance(DType::f32, depth)) << what;
}

struct Heads {
  int64_t N;
  int H, Hkv, D;
  int64_t width() const { return int64_t(H + 2 * Hkv) * D; }
};

}  // namespace

TEST(OpsQwen, BiasForwardAndBackwardMatchOracle) {
  CpuBackend backend;
  for (auto [N, C] : {std::pair<int64_t, int>{37, 100}, {1, 1}, {300, 129}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    const std::vector<float> y0 = random_floats(N * C, 1), b = random_floats(C, 2);
    std::vector<float> y = y0;
    backend.bias_forward(y.data(), b.data(), N, C);
    Vec want = ref::to_double(y0);
    ref::bias_forward(want, ref::to_double(b), N, C);
    expect_close(y, want, 1, "bias forward");

    const std::vector<float> dy = random_floats(N * C, 3), db0 = random_floats(C, 4);
    std::vector<float> db = db0;
    backend.bias_backward(db.data(), dy.data(), N, C);
    Vec want_db = ref::to_double(db0);
    ref::bias_backward(want_db, ref::to_double(dy), N, C);
    expect_close(db, want_db, double(N) + 1, "bias backward");  // N sequential additions
  }
}

TEST(OpsQwen, HeadRmsNormForwardAndBackwardMatchOracle) {
  CpuBackend backend;
  const float eps = 1e-6f;
  for (Heads s : {Heads{9, 7, 1, 4}, Heads{5, 4, 2, 6}, Heads{64, 16, 8, 128}, Heads{1, 1, 1, 2}}) {
    SCOPED_TRACE("N=" + std::to_string(s.N) + " H=" + std::to_string(s.H) +
                 " Hkv=" + std::to_string(s.Hkv) + " D=" + std::to_string(s.D));
    const std::vector<float> x = random_floats(s.N * s.width(), 11, 2.0);
    const std::vector<float> qw = random_floats(s.D, 12), kw = random_floats(s.D, 13);
    std::vector<float> out(s.N * s.width(), kNaN), rstd(s.N * (s.H + s.Hkv), kNaN);
    backend.head_rmsnorm_forward(out.data(), rstd.data(), x.data(), qw.data(), kw.data(), s.N, s.H,
                                 s.Hkv, s.D, eps);
    Vec want, want_rstd;
    ref::head_rmsnorm_forward(want, want_rstd, ref::to_double(x), ref::to_double(qw),
                              ref::to_double(kw), s.N, s.H, s.Hkv, s.D, eps);
    const double depth = std::sqrt(double(s.D)) + 4;
    expect_close(out, want, depth, "head rmsnorm out");
    expect_close(rstd, want_rstd, depth, "head rmsnorm rstd");

    const std::vector<float> dy = random_floats(s.N * s.width(), 14);
    const std::vector<float> dqw0 = random_floats(s.D, 15), dkw0 = random_floats(s.D, 16);
    std::vector<float> d = dy, dqw = dqw0, dkw = dkw0;
    backend.head_rmsnorm_backward(d.data(), dqw.data(), dkw.data(), x.data(), qw.data(), kw.data(),
                                  rstd.data(), s.N, s.H, s.Hkv, s.D);
    Vec want_d = ref::to_double(dy), want_dqw = ref::to_double(dqw0),
        want_dkw = ref::to_double(dkw0);
    ref::head_rmsnorm_backward(want_d, want_dqw, want_dkw, ref::to_double(x), ref::to_double(qw),
                               ref::to_double(kw), ref::to_double(rstd), s.N, s.H, s.Hkv, s.D);
    expect_close(d, want_d, std::sqrt(double(s.D)) + 8, "head rmsnorm dx");
    // Each weight gradient sums N * heads products in order.
    expect_close(dqw, want_dqw, double(s.N * s.H) + 8, "head rmsnorm dq_weight");
    expect_close(dkw, want_dkw, double(s.N * s.Hkv) + 8, "head rmsnorm dk_weight");
    for (int64_t n = 0; n < s.N; ++n)  // value heads untouched in backward
      for (int64_t i = int64_t(s.H + s.Hkv) * s.D; i < s.width(); ++i)
        ASSERT_EQ(d[n * s.width() + i], dy[n * s.width() + i]);
  }
}

// RoPE with llama3 scaling: the CPU tables (RopeParams::inv_freq) against the
// oracle's own recipe, forward and backward, positions up to 700 > original 512.
TEST(OpsQwen, Llama3ScaledRopeMatchesOracle) {
  CpuBackend backend;
  const int B = 2, T = 350, H = 4, Hkv = 2, D = 6, pos0 = 350;
  const RopeParams rope(10000.0, {8.0, 1.0, 4.0, 512});
  const std::vector<float> qkv = random_floats(int64_t(B) * T * (H + 2 * Hkv) * D, 31);
  for (bool inverse : {false, true}) {
    std::vector<float> got = qkv;
    Vec want = ref::to_double(qkv);
    if (inverse) {
      backend.rope_backward(got.data(), B, T, H, Hkv, D, rope, pos0);
      ref::rope_backward(want, B, T, H, Hkv, D, rope, pos0);
    } else {
      backend.rope_forward(got.data(), B, T, H, Hkv, D, rope, pos0);
      ref::rope_forward(want, B, T, H, Hkv, D, rope, pos0);
    }
    // fp32 cos/sin of an angle up to 700 rad: rounding of the angle ~ 700 u.
    expect_close(got, want, 700, inverse ? "rope backward" : "rope forward");
  }
  // The three pairs of D = 6 are kept, interpolated and divided by 8, as in the recipe.
  EXPECT_EQ(rope.inv_freq(0, D), 1.0);
  EXPECT_NEAR(rope.inv_freq(2, D), std::pow(10000.0, -4.0 / 6) / 8, 1e-18);
  const double f1 = std::pow(10000.0, -2.0 / 6), s1 = (512 * f1 / (2 * M_PI) - 1) / 3;
  EXPECT_NEAR(rope.inv_freq(1, D), f1 * ((1 - s1) / 8 + s1), 1e-16);
  EXPECT_GT(s1, 0.0);
  EXPECT_LT(s1, 1.0);
}

TEST(OpsQwen, ResultsDoNotDependOnTheThreadCount) {
  const Heads s{256, 16, 8, 128};
  const std::vector<float> x = random_floats(s.N * s.width(), 21), w = random_floats(s.D, 22);
  auto run = [&](int threads) {
    CpuBackendOptions options;
    options.threads = threads;
    CpuBackend backend(options);
    std::vector<float> out(s.N * s.width()), rstd(s.N * (s.H + s.Hkv)), d = x;
    std::vector<float> dw(2 * s.D, 0.0f), db(s.width(), 0.0f);
    backend.head_rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), w.data(), s.N, s.H,
                                 s.Hkv, s.D, 1e-6f);
    backend.head_rmsnorm_backward(d.data(), dw.data(), dw.data() + s.D, x.data(), w.data(),
                                  w.data(), rstd.data(), s.N, s.H, s.Hkv, s.D);
    backend.bias_backward(db.data(), x.data(), s.N, int(s.width()));
    out.insert(out.end(), d.begin(), d.end());
    out.insert(out.end(), dw.begin(), dw.end());
    out.insert(out.end(), db.begin(), db.end());
    return out;
  };
  EXPECT_EQ(run(1), run(2));
}
