// The CPU backend's elementwise ops (add, embedding, RMSNorm, RoPE, SwiGLU, global
// norm, AdamW) against the fp64 oracle (tests/reference/ref_elementwise.cpp), on odd
// shapes, with tolerances derived from the fp32 / bf16 unit roundoff and the depth of
// each computation. The main tests run the ISA picked by KILN_ISA (ctest runs this
// binary again capped at avx2 and scalar); ElementwiseIsa/* switches every variant the
// CPU has with set_isa_cap. Also: bf16 outputs bit-exact to float_to_bf16, bitwise
// determinism across runs and thread counts, and RoPE backward = transpose of forward.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "reference/compare.h"
#include "reference/reference_ops.h"

using namespace kiln;
using ref::Vec;

namespace {

std::vector<float> random_floats(int64_t n, uint64_t seed, double scale = 1.0) {
  return ref::to_float(ref::random_vector(n, seed, scale));
}

std::vector<int32_t> random_tokens(int64_t n, int vocab, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = int32_t(rng.below(uint64_t(vocab)));
  return t;
}

// bf16 bits -> floats, for the normalised-error comparison.
std::vector<float> bf16_to_floats(const std::vector<uint16_t>& bits) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_float(bf16{bits[i]});
  return out;
}

// Distance in bf16 units in the last place between two finite bf16 values.
int64_t bf16_ulp_distance(uint16_t a, uint16_t b) {
  auto ordered = [](uint16_t x) { return (x & 0x8000) ? -int64_t(x & 0x7fff) : int64_t(x); };
  return std::llabs(ordered(a) - ordered(b));
}

// A bf16 output of a computation accurate to a few fp32 roundings can differ from the
// correctly rounded reference by at most one bf16 ulp (when the exact value sits next
// to a rounding boundary); and its normalised error is at most the bf16 unit roundoff.
void expect_bf16_close(const std::vector<uint16_t>& got, const Vec& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  int64_t worst = 0, worst_at = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const int64_t d = bf16_ulp_distance(got[i], float_to_bf16(float(want[i])).bits);
    if (d > worst) worst = d, worst_at = int64_t(i);
  }
  EXPECT_LE(worst, 1) << what << ": element " << worst_at << " is " << worst
                      << " bf16 ulps from the rounded reference " << want[size_t(worst_at)];
  EXPECT_LE(ref::normalized_error(bf16_to_floats(got), want),
            ref::derived_tolerance(DType::bf16, 1))
      << what;
}

void expect_close(const std::vector<float>& got, const Vec& want, double depth,
                  const std::string& what) {
  const double err = ref::normalized_error(got, want);
  EXPECT_LE(err, ref::derived_tolerance(DType::f32, depth)) << what << " (depth " << depth << ")";
}

// Bitwise: the bf16 output must be float_to_bf16 of the fp32 output of the same op.
void expect_bf16_of(const std::vector<uint16_t>& got, const std::vector<float>& fp32,
                    const std::string& what) {
  ASSERT_EQ(got.size(), fp32.size());
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != float_to_bf16(fp32[i]).bits) {
      ADD_FAILURE() << what << ": element " << i << " of the bf16 output is 0x" << std::hex
                    << got[i] << ", float_to_bf16 of the fp32 output gives 0x"
                    << float_to_bf16(fp32[i]).bits;
      return;
    }
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// ---------------------------------------------------------------------------------
// One check per op, used by the shape sweeps and by the per-ISA suite.

void check_embedding(CpuBackend& be, int64_t N, int C, int vocab) {
  SCOPED_TRACE("embedding N=" + std::to_string(N) + " C=" + std::to_string(C));
  const auto tokens = random_tokens(N, vocab, 11 + N);
  const auto table = random_floats(int64_t(vocab) * C, 12);
  std::vector<float> out(static_cast<size_t>(N * C), NAN);
  be.embedding_forward(out.data(), tokens.data(), table.data(), N, C);
  Vec want;
  ref::embedding_forward(want, tokens, ref::to_double(table), C);
  EXPECT_EQ(ref::max_abs_error(out, want), 0.0) << "a gather is exact";

  // Backward accumulates into an existing gradient; tokens repeat (N > vocab).
  const auto dout = random_floats(N * C, 13);
  auto dtable = random_floats(int64_t(vocab) * C, 14);
  Vec want_dtable = ref::to_double(dtable);
  ref::embedding_backward(want_dtable, tokens, ref::to_double(dout), C);
  be.embedding_backward(dtable.data(), tokens.data(), dout.data(), N, C);
  std::vector<int> count(static_cast<size_t>(vocab), 0);
  for (int32_t t : tokens) ++count[size_t(t)];
  int max_count = 0;
  for (int c : count) max_count = std::max(max_count, c);
  expect_close(dtable, want_dtable, max_count + 1, "embedding_backward");
}

void check_rmsnorm(CpuBackend& be, int64_t N, int C) {
  SCOPED_TRACE("rmsnorm N=" + std::to_string(N) + " C=" + std::to_string(C));
  const float eps = 1e-5f;
  const auto x = random_floats(N * C, 21, 2.0);
  const auto w = random_floats(C, 22);
  Vec want, want_rstd;
  ref::rmsnorm_forward(want, want_rstd, ref::to_double(x), ref::to_double(w), N, C, eps);
  // sum of squares: a random walk of C roundings; then a handful of scalar ops.
  const double depth = std::sqrt(double(C)) + 4;

  std::vector<float> out(static_cast<size_t>(N * C)), rstd(static_cast<size_t>(N));
  be.rmsnorm_forward(out.data(), DType::f32, rstd.data(), x.data(), w.data(), N, C, eps);
  expect_close(out, want, depth, "rmsnorm_forward out");
  expect_close(rstd, want_rstd, depth, "rmsnorm_forward rstd");

  std::vector<uint16_t> out_bf16(static_cast<size_t>(N * C));
  std::vector<float> rstd2(static_cast<size_t>(N));
  be.rmsnorm_forward(out_bf16.data(), DType::bf16, rstd2.data(), x.data(), w.data(), N, C, eps);
  expect_bf16_close(out_bf16, want, "rmsnorm_forward bf16");
  expect_bf16_of(out_bf16, out, "rmsnorm_forward bf16");
  EXPECT_TRUE(bitwise_equal(rstd, rstd2));

  // Backward: both outputs accumulate. The oracle gets the same fp32 rstd.
  const auto dout = random_floats(N * C, 23);
  auto dx = random_floats(N * C, 24);
  auto dw = random_floats(C, 25);
  Vec want_dx = ref::to_double(dx), want_dw = ref::to_double(dw);
  ref::rmsnorm_backward(want_dx, want_dw, ref::to_double(dout), ref::to_double(x),
                        ref::to_double(w), ref::to_double(rstd), N, C);
  be.rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
  expect_close(dx, want_dx, std::sqrt(double(C)) + 8, "rmsnorm_backward dx");
  // dweight: fp32 sums of at most 16 rows, the blocks then added in double.
  expect_close(dw, want_dw, std::sqrt(16.0) + 8, "rmsnorm_backward dweight");
}

void check_swiglu(CpuBackend& be, int64_t N, int F) {
  SCOPED_TRACE("swiglu N=" + std::to_string(N) + " F=" + std::to_string(F));
  // Scale 6 reaches far into both tails of the sigmoid.
  const auto h13 = random_floats(N * 2 * F, 31, 6.0);
  Vec want;
  ref::swiglu_forward(want, ref::to_double(h13), N, F);
  // exp_approx is within ~2 ulp; then a division and two products.
  const double depth = 8;
  std::vector<float> out(static_cast<size_t>(N * F));
  be.swiglu_forward(out.data(), DType::f32, h13.data(), N, F);
  expect_close(out, want, depth, "swiglu_forward");
  std::vector<uint16_t> out_bf16(static_cast<size_t>(N * F));
  be.swiglu_forward(out_bf16.data(), DType::bf16, h13.data(), N, F);
  expect_bf16_close(out_bf16, want, "swiglu_forward bf16");
  expect_bf16_of(out_bf16, out, "swiglu_forward bf16");

  const auto dout = random_floats(N * F, 32);
  std::vector<float> dh13(static_cast<size_t>(N * 2 * F),
                          NAN);  // (=): stale values must not matter
  be.swiglu_backward(dh13.data(), dout.data(), h13.data(), N, F);
  Vec want_dh13;
  ref::swiglu_backward(want_dh13, ref::to_double(dout), ref::to_double(h13), N, F);
  expect_close(dh13, want_dh13, depth + 4, "swiglu_backward");
}

struct RopeShape {
  int B, T, H, Hkv, D, pos0;
  double theta;
};

std::string rope_name(const RopeShape& s) {
  return "rope B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) +
         " H=" + std::to_string(s.H) + " Hkv=" + std::to_string(s.Hkv) +
         " D=" + std::to_string(s.D) + " pos0=" + std::to_string(s.pos0) +
         " theta=" + std::to_string(s.theta);
}

void check_rope(CpuBackend& be, const RopeShape& s) {
  SCOPED_TRACE(rope_name(s));
  const int64_t n = int64_t(s.B) * s.T * (s.H + 2 * s.Hkv) * s.D;
  const auto qkv = random_floats(n, 41 + s.D);
  // cos and sin are rounded to fp32, then two products and a sum per output.
  const double depth = 4;

  auto got = qkv;
  be.rope_forward(got.data(), s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
  Vec want = ref::to_double(qkv);
  ref::rope_forward(want, s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
  expect_close(got, want, depth, "rope_forward");
  // The v heads are not touched at all.
  const int64_t row = int64_t(s.H + 2 * s.Hkv) * s.D;
  for (int64_t r = 0; r < int64_t(s.B) * s.T; ++r)
    for (int64_t j = int64_t(s.H + s.Hkv) * s.D; j < row; ++j)
      ASSERT_EQ(got[r * row + j], qkv[r * row + j]) << "v head changed";

  auto back = qkv;
  be.rope_backward(back.data(), s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
  Vec want_back = ref::to_double(qkv);
  ref::rope_backward(want_back, s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
  expect_close(back, want_back, depth, "rope_backward");

  // Transpose identity: <R x, y> = <x, R^T y>, to the rounding of the two rotations.
  const auto y = random_floats(n, 43);
  auto rty = y;
  be.rope_backward(rty.data(), s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
  double rx_y = 0, x_rty = 0, norm_x = 0, norm_y = 0;
  for (int64_t i = 0; i < n; ++i) {
    rx_y += double(got[i]) * y[i];
    x_rty += double(qkv[i]) * rty[i];
    norm_x += double(qkv[i]) * qkv[i];
    norm_y += double(y[i]) * y[i];
  }
  EXPECT_LE(std::fabs(rx_y - x_rty) / std::sqrt(norm_x * norm_y),
            ref::derived_tolerance(DType::f32, 2 * depth))
      << "<R x, y> = " << rx_y << " but <x, R^T y> = " << x_rty;

  // And R^T R x = x.
  auto round_trip = got;
  be.rope_backward(round_trip.data(), s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
  expect_close(round_trip, ref::to_double(qkv), 2 * depth, "rope_backward(rope_forward(x))");
}

void check_add_and_norm(CpuBackend& be, int64_t n) {
  SCOPED_TRACE("add / global_norm n=" + std::to_string(n));
  const auto a = random_floats(n, 51), b = random_floats(n, 52);
  std::vector<float> out(static_cast<size_t>(n));
  be.add(out.data(), a.data(), b.data(), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[i], a[i] + b[i]) << "add is one fp32 rounding";
  auto aliased = a;
  be.add(aliased.data(), aliased.data(), b.data(), n);
  EXPECT_TRUE(bitwise_equal(aliased, out)) << "add with out aliasing a";

  float norm = NAN;
  be.global_norm(&norm, a.data(), n);
  const double want = ref::global_norm(ref::to_double(a));
  // Squares and sums in double; the only fp32 rounding is the result's.
  EXPECT_LE(std::fabs(norm - want) / want, ref::derived_tolerance(DType::f32, 1))
      << norm << " vs " << want;
}

struct AdamWCase {
  float weight_decay, max_norm, grad_scale;
};

// Several AdamW steps against the oracle, with the grad norm from global_norm; the
// compute copy (fp32 or bf16) must be the new params bit for bit.
void check_adamw(CpuBackend& be, int64_t n, const AdamWCase& c, DType compute, int steps = 5) {
  SCOPED_TRACE("adamw n=" + std::to_string(n) + " wd=" + std::to_string(c.weight_decay) +
               " max_norm=" + std::to_string(c.max_norm));
  auto p = random_floats(n, 61);
  std::vector<float> m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
  Vec rp = ref::to_double(p), rm(static_cast<size_t>(n), 0.0), rv(static_cast<size_t>(n), 0.0);
  std::vector<uint16_t> copy_bf16(static_cast<size_t>(n));
  std::vector<float> copy_f32(static_cast<size_t>(n));
  void* copy = compute == DType::bf16 ? static_cast<void*>(copy_bf16.data()) : copy_f32.data();
  AdamWHyper h;
  h.lr = 1e-2f;
  h.weight_decay = c.weight_decay;
  h.max_norm = c.max_norm;
  for (int step = 1; step <= steps; ++step) {
    h.step = step;
    const auto g = random_floats(n, 100 + step, c.grad_scale);
    float norm = 0;
    be.global_norm(&norm, g.data(), n);
    be.adamw(p.data(), copy, compute, g.data(), m.data(), v.data(), n, h, &norm);
    ref::AdamWHyperRef rh{h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.max_norm, h.step};
    ref::adamw(rp, ref::to_double(g), rm, rv, rh, ref::global_norm(ref::to_double(g)));
  }
  // A few fp32 roundings per element and step, accumulating over the steps.
  const double depth = 6.0 * steps;
  expect_close(p, rp, depth, "adamw params");
  expect_close(m, rm, depth, "adamw m");
  expect_close(v, rv, depth, "adamw v");
  if (compute == DType::bf16)
    expect_bf16_of(copy_bf16, p, "adamw bf16 compute copy");
  else
    EXPECT_TRUE(bitwise_equal(copy_f32, p)) << "adamw fp32 compute copy";
}

// Restores the ISA cap of the environment after a test changed it.
Isa env_isa_cap() {
  Isa cap = Isa::avx512;
  const char* env = std::getenv("KILN_ISA");
  if (env && *env) parse_isa(env, &cap);
  return cap;
}

}  // namespace

// --- shape sweeps at the active ISA -------------------------------------------------

TEST(Elementwise, Embedding) {
  CpuBackend be;
  for (int64_t N : {1, 7, 257})
    for (int C : {36, 100, 172}) check_embedding(be, N, C, 50);
  // Every token the same: the worst case for a naive parallel scatter.
  const int64_t N = 257;
  const int C = 172;
  std::vector<int32_t> same(N, 3);
  const auto dout = random_floats(N * C, 71);
  std::vector<float> dtable(static_cast<size_t>(5 * C), 0.0f);
  Vec want(static_cast<size_t>(5 * C), 0.0);
  be.embedding_backward(dtable.data(), same.data(), dout.data(), N, C);
  ref::embedding_backward(want, same, ref::to_double(dout), C);
  expect_close(dtable, want, double(N), "embedding_backward, one repeated token");
}

TEST(Elementwise, RmsNorm) {
  CpuBackend be;
  for (int64_t N : {1, 7, 257})
    for (int C : {36, 100, 172, 768}) check_rmsnorm(be, N, C);
}

TEST(Elementwise, SwiGlu) {
  CpuBackend be;
  for (int64_t N : {1, 7, 257})
    for (int F : {36, 100, 172}) check_swiglu(be, N, F);
}

TEST(Elementwise, Rope) {
  CpuBackend be;
  const int BT[][2] = {{1, 1}, {2, 7}, {1, 257}};
  const int heads[][2] = {{4, 4}, {4, 2}, {8, 2}};  // GQA ratios 1, 2, 4
  for (auto& bt : BT)
    for (auto& hh : heads)
      for (int D : {8, 18, 64})
        for (int pos0 : {0, 5}) check_rope(be, {bt[0], bt[1], hh[0], hh[1], D, pos0, 10000.0});
  // Far positions and another theta (Qwen uses 1e6); a later call with fewer positions
  // must reuse the grown table correctly.
  check_rope(be, {2, 7, 4, 2, 64, 4000, 1e6});
  check_rope(be, {1, 3, 2, 1, 18, 9000, 10000.0});
  check_rope(be, {1, 2, 2, 1, 18, 1, 10000.0});
}

TEST(Elementwise, AddAndGlobalNorm) {
  CpuBackend be;
  for (int64_t n : {1, 7, 257, 300001}) check_add_and_norm(be, n);
}

TEST(Elementwise, AdamWMatchesTorchFormula) {
  CpuBackend be;
  // Weight decay on/off; clipping off (max_norm 0), inactive (norm < max_norm), active.
  const AdamWCase cases[] = {{0.0f, 0.0f, 1.0f},
                             {0.1f, 0.0f, 1.0f},
                             {0.1f, 1e6f, 1.0f},
                             {0.1f, 1.0f, 10.0f},
                             {0.0f, 1.0f, 10.0f}};
  for (int64_t n : {7, 257, 300001})
    for (const auto& c : cases)
      for (DType dt : {DType::f32, DType::bf16}) check_adamw(be, n, c, dt);
}

TEST(Elementwise, AdamWClippingChangesTheStep) {
  // Guards the clipping test above against passing vacuously: with these sizes the
  // clipped and unclipped oracle results differ by far more than the tolerance.
  const int64_t n = 257;
  const auto g = ref::random_vector(n, 101, 10.0);
  const double norm = ref::global_norm(g);
  ASSERT_GT(norm, 1.0);
  auto run = [&](double max_norm) {
    Vec p = ref::random_vector(n, 61), m(n, 0.0), v(n, 0.0);
    ref::adamw(p, g, m, v, {1e-2, 0.9, 0.95, 1e-8, 0.1, max_norm, 1}, norm);
    return m;
  };
  EXPECT_GT(ref::normalized_error(ref::to_float(run(1.0)), run(0.0)), 0.5);
}

TEST(Elementwise, AdamWCopiesSpecialValuesLikeFloatToBf16) {
  // With lr = 0 and zero gradients AdamW leaves params unchanged, so the bf16 compute
  // copy shows the kernel's fp32 -> bf16 conversion on arbitrary bit patterns: ties,
  // denormals, infinities, NaN, the largest finite values.
  CpuBackend be;
  const int64_t n = 4099;
  std::vector<float> p(static_cast<size_t>(n));
  Rng rng(5, 9);
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu, 0x3f808000u,
                               0x3f818000u, 0x3f80c000u, 0x7f7fffffu, 0xff7f8000u, 0x7f800000u,
                               0xff800000u, 0x7fc00000u, 0x7f800001u, 0x00008000u, 0x00018000u};
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = i < 15 ? specials[i] : rng.next_u32();
    if (i >= 15 && i % 3 == 0) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
    std::memcpy(&p[size_t(i)], &u, 4);
  }
  const auto p0 = p;
  std::vector<float> g(static_cast<size_t>(n), 0.0f), m(static_cast<size_t>(n), 0.0f),
      v(static_cast<size_t>(n), 0.0f);
  std::vector<uint16_t> copy(static_cast<size_t>(n));
  AdamWHyper h;
  h.lr = 0.0f;
  be.adamw(p.data(), copy.data(), DType::bf16, g.data(), m.data(), v.data(), n, h, nullptr);
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(p0[i])) {
      EXPECT_TRUE(std::isnan(bf16_to_float(bf16{copy[i]}))) << "element " << i;
      continue;
    }
    ASSERT_EQ(std::memcmp(&p[i], &p0[i], 4), 0) << "lr = 0 changed element " << i;
    ASSERT_EQ(copy[i], float_to_bf16(p0[i]).bits) << "element " << i << " = " << p0[i];
  }
}

TEST(Elementwise, DeterministicAcrossRunsAndThreadCounts) {
  // Every kernel partitions its work independently of the thread count and reduces in
  // a fixed order, so results are bitwise equal run to run and for 1, 2 or 3 threads.
  CpuBackend be;
  const int64_t N = 257;
  const int C = 172, F = 172;
  const int64_t n = 300001;
  const auto x = random_floats(N * C, 81), w = random_floats(C, 82);
  const auto dout = random_floats(N * C, 83), h13 = random_floats(N * 2 * F, 84, 4.0);
  const auto tokens = random_tokens(N, 20, 85);
  const auto g = random_floats(n, 86), p0 = random_floats(n, 87);
  auto run_all = [&]() {
    std::vector<std::vector<float>> r;
    std::vector<float> out(static_cast<size_t>(N * C)), rstd(static_cast<size_t>(N));
    be.rmsnorm_forward(out.data(), DType::f32, rstd.data(), x.data(), w.data(), N, C, 1e-5f);
    std::vector<float> dx(static_cast<size_t>(N * C), 0.0f), dw(static_cast<size_t>(C), 0.0f);
    be.rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), N, C);
    std::vector<float> sw(static_cast<size_t>(N * F)), dsw(static_cast<size_t>(N * 2 * F));
    be.swiglu_forward(sw.data(), DType::f32, h13.data(), N, F);
    be.swiglu_backward(dsw.data(), dout.data(), h13.data(), N, F);
    std::vector<float> dtable(static_cast<size_t>(20 * C), 0.0f);
    be.embedding_backward(dtable.data(), tokens.data(), dout.data(), N, C);
    std::vector<float> qkv = h13;  // read as qkv [1, N, (2 + 2*1) * 86], 344 = 2F per row
    be.rope_forward(qkv.data(), 1, int(N), 2, 1, 86, 10000.0, 3);
    std::vector<float> norm(1);
    be.global_norm(norm.data(), g.data(), n);
    std::vector<float> p = p0, m(static_cast<size_t>(n), 0.0f), v(static_cast<size_t>(n), 0.0f);
    AdamWHyper h;
    h.weight_decay = 0.1f;
    h.max_norm = 1.0f;
    be.adamw(p.data(), nullptr, DType::f32, g.data(), m.data(), v.data(), n, h, norm.data());
    for (auto* vec : {&out, &rstd, &dx, &dw, &sw, &dsw, &dtable, &qkv, &norm, &p, &m, &v})
      r.push_back(*vec);
    return r;
  };
  const int saved = omp_get_max_threads();
  const auto first = run_all();
  const auto second = run_all();
  omp_set_num_threads(1);
  const auto one = run_all();
  omp_set_num_threads(3);
  const auto three = run_all();
  omp_set_num_threads(saved);
  const char* names[] = {"rmsnorm out", "rstd",    "rmsnorm dx", "rmsnorm dweight",
                         "swiglu",      "dh13",    "dtable",     "rope",
                         "global_norm", "adamw p", "adamw m",    "adamw v"};
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_TRUE(bitwise_equal(first[i], second[i])) << names[i] << ": run to run";
    EXPECT_TRUE(bitwise_equal(first[i], one[i])) << names[i] << ": 1 thread";
    EXPECT_TRUE(bitwise_equal(first[i], three[i])) << names[i] << ": 3 threads";
  }
}

TEST(Elementwise, BadArgumentsAreInputErrors) {
  CpuBackend be;
  std::vector<float> qkv(1024);
  EXPECT_THROW(be.rope_forward(qkv.data(), 1, 2, 4, 2, 7, 10000.0, 0), InputError);    // odd D
  EXPECT_THROW(be.rope_forward(qkv.data(), 1, 2, 4, 3, 8, 10000.0, 0), InputError);    // 4 % 3
  EXPECT_THROW(be.rope_backward(qkv.data(), 1, 2, 4, 2, 8, 10000.0, -1), InputError);  // pos0
  const int32_t bad_tokens[] = {1, -1};
  EXPECT_THROW(be.embedding_forward(qkv.data(), bad_tokens, qkv.data(), 2, 4), InputError);
  EXPECT_THROW(
      be.rmsnorm_forward(qkv.data(), DType::f32, qkv.data(), qkv.data(), qkv.data(), 1, 0, 1e-5f),
      InputError);
}

// --- every ISA variant the CPU has ---------------------------------------------------

class ElementwiseIsa : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    const CpuFeatures& f = cpu_features();
    const Isa isa = GetParam();
    if (isa == Isa::avx2 && !f.avx2) GTEST_SKIP() << "this CPU has no AVX2 (with FMA, F16C)";
    if (isa == Isa::avx512 && !f.avx512) GTEST_SKIP() << "this CPU has no AVX-512 F/BW/DQ/VL";
    set_isa_cap(isa);
    ASSERT_EQ(active_isa(), isa);
  }
  void TearDown() override { set_isa_cap(env_isa_cap()); }
};

TEST_P(ElementwiseIsa, AllOpsMatchTheReference) {
  CpuBackend be;
  check_embedding(be, 257, 100, 50);
  check_rmsnorm(be, 7, 100);
  check_rmsnorm(be, 257, 172);
  check_swiglu(be, 257, 172);
  check_swiglu(be, 7, 36);
  check_rope(be, {2, 7, 8, 2, 18, 5, 10000.0});
  check_rope(be, {1, 257, 4, 4, 64, 0, 10000.0});
  check_add_and_norm(be, 300001);
  check_adamw(be, 300001, {0.1f, 1.0f, 10.0f}, DType::bf16, 3);
  check_adamw(be, 257, {0.0f, 0.0f, 1.0f}, DType::f32, 3);
}

INSTANTIATE_TEST_SUITE_P(Variants, ElementwiseIsa,
                         ::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(isa_name(info.param));
                         });
