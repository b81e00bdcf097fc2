// Int8 linear layers (W8A8, backend/int8_weights.h) against the fp64 oracle:
//   - the weight quantizer follows the format (scales, rounding, padding, range);
//   - on operands that quantize exactly (values on a grid whose group maximum is
//     127 steps), y equals the exact product up to fp32 accumulation alone, which
//     checks the integer pipeline (offsets, corrections, scales, tails) exactly;
//   - on random operands, y stays within the quantization bound derived from the
//     scales: |y - x W^T| <= sum_k (|x_k| + sx/2) sw/2 + |w_k| sx/2, plus fp32;
//   - every body (scalar, AVX2, AVX-512 with and without VNNI, where the CPU has
//     them) on the same inputs, and the backend op at the ISA cap the test runs at.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/int8_linear.h"
#include "backend/int8_weights.h"
#include "core/cpu_features.h"
#include "core/error.h"
#include "core/rng.h"
#include "reference/compare.h"

namespace kiln {
namespace {


struct Dims {
  int64_t M, N, K;
};

// Values on a grid: integers i in [-127, 127] times `step`, with one +-127 in every
// group of 64 along a row, so each group's scale is exactly `step` and every value
// quantizes without error.
std::vector<float> grid_matrix(int64_t rows, int64_t K, double step, uint64_t seed) {
  Rng rng(seed, 3);
  std::vector<float> v(size_t(rows * K));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t k = 0; k < K; ++k) v[size_t(r * K + k)] = float((int(rng.below(255)) - 127) * step);
    for (int64_t g = 0; g < int8_groups(K); ++g) {
      const int64_t len = std::min(kInt8Group, K - g * kInt8Group);
      const int64_t k = g * kInt8Group + (r + g) % len;
      v[size_t(r * K + k)] = float(((r + g) % 2 ? 127 : -127) * step);
    }
  }
  return v;
}

struct Quantized {
  std::vector<uint8_t> q;
  std::vector<float> scale;
};

Quantized quantize(const std::vector<float>& W, int64_t N, int64_t K) {
  Quantized w{std::vector<uint8_t>(int8_q_bytes(N, K)),
              std::vector<float>(int8_scale_bytes(N, K) / sizeof(float))};
  quantize_int8_weights(w.q.data(), w.scale.data(), W.data(), N, K);
  return w;
}

// max |v| over group g of row r (fp64).
double group_max(const std::vector<float>& v, int64_t r, int64_t K, int64_t g) {
  double m = 0;
  for (int64_t k = g * kInt8Group; k < std::min(K, (g + 1) * kInt8Group); ++k)
    m = std::max(m, std::fabs(double(v[size_t(r * K + k)])));
  return m;
}

// The fp32 part of the error of one output: the group terms (int32-exact sums
// times scales) added in fp32 in at most G + 6 roundings, on |w x| inflated by
// the quantization; `sum_abs` is that inflated sum of |w x|.
double fp32_bound(int64_t K, double sum_abs) {
  return double(int8_groups(K) + 6) * ref::unit_roundoff(DType::f32) * sum_abs;
}

TEST(Int8Weights, QuantizerFollowsTheFormat) {
  const int64_t N = 5, K = 150;  // 3 groups, the last one of 22 values
  std::vector<float> W = ref::to_float(ref::random_vector(N * K, 11, 2.0));
  for (int64_t k = 64; k < 128; ++k) W[size_t(2 * K + k)] = 0.0f;  // an all-zero group
  const Quantized w = quantize(W, N, K);
  const int64_t G = int8_groups(K), Kp = int8_padded(K);
  ASSERT_EQ(G, 3);
  ASSERT_EQ(Kp, 192);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t g = 0; g < G; ++g) {
      const double amax = group_max(W, n, K, g), want = amax / 127.0;
      const double s = w.scale[size_t(n * G + g)];
      EXPECT_NEAR(s, want, want * std::ldexp(1.0, -23)) << "row " << n << " group " << g;
      bool hit_max = false;
      for (int64_t k = g * kInt8Group; k < (g + 1) * kInt8Group; ++k) {
        const int q = int(w.q[size_t(n * Kp + k)]) - 128;
        if (k >= K) {
          EXPECT_EQ(q, 0) << "padding at " << k;
          continue;
        }
        EXPECT_LE(std::abs(q), 127);
        const double x = W[size_t(n * K + k)];
        if (amax == 0) {
          EXPECT_EQ(q, 0);
          continue;
        }
        // round to nearest: within half a step (and the float rounding of x / s)
        EXPECT_LE(std::fabs(q * s - x), s * (0.5 + 1e-5)) << "row " << n << " k " << k;
        if (std::fabs(x) == amax) hit_max = hit_max || std::abs(q) == 127;
      }
      if (amax > 0) {
        EXPECT_TRUE(hit_max) << "the group maximum maps to +-127";
      }
    }
  EXPECT_EQ(w.scale[size_t(2 * G + 1)], 0.0f);

  std::vector<float> bad = W;
  bad[7] = std::numeric_limits<float>::infinity();
  Quantized out = w;
  EXPECT_THROW(quantize_int8_weights(out.q.data(), out.scale.data(), bad.data(), N, K), InputError);
}

class Int8Linear : public ::testing::TestWithParam<std::tuple<Dims, bool>> {};

// Exactly quantizable operands: only fp32 accumulation separates y from x W^T.
TEST_P(Int8Linear, GridOperandsGiveTheExactProduct) {
  const auto [dims, accumulate] = GetParam();
  const auto [M, N, K] = dims;
  const std::vector<float> x = grid_matrix(M, K, 0.125, uint64_t(M * 31 + K));
  const std::vector<float> W = grid_matrix(N, K, 1.0 / 32, uint64_t(N * 17 + K));
  const Quantized w = quantize(W, N, K);
  const std::vector<float> y0 = ref::to_float(ref::random_vector(M * N, 5, 50.0));

  CpuBackend backend;
  std::vector<float> y = accumulate ? y0 : std::vector<float>(size_t(M * N), std::nanf(""));
  backend.linear_int8(y.data(), x.data(), w.q.data(), w.scale.data(), M, N, K, accumulate);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double want = accumulate ? double(y0[size_t(m * N + n)]) : 0.0, sum_abs = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double p = double(x[size_t(m * K + k)]) * double(W[size_t(n * K + k)]);
        want += p;
        sum_abs += std::fabs(p);
      }
      const double u = ref::unit_roundoff(DType::f32);
      const double bound =
          fp32_bound(K, sum_abs) + (accumulate ? u * (std::fabs(want) + sum_abs) : 0.0);
      ASSERT_LE(std::fabs(double(y[size_t(m * N + n)]) - want), bound)
          << "y[" << m << ", " << n << "] isa " << isa_name(active_isa());
    }
}

// Random operands: within the quantization bound derived from the scales.
TEST_P(Int8Linear, RandomOperandsStayWithinTheQuantizationBound) {
  const auto [dims, accumulate] = GetParam();
  const auto [M, N, K] = dims;
  const std::vector<float> x = ref::to_float(ref::random_vector(M * K, uint64_t(M + 7 * K), 3.0));
  const std::vector<float> W = ref::to_float(ref::random_vector(N * K, uint64_t(N + 13 * K), 0.2));
  const Quantized w = quantize(W, N, K);
  const std::vector<float> y0 = ref::to_float(ref::random_vector(M * N, 9, 1.0));
  const int64_t G = int8_groups(K);

  CpuBackend backend;
  std::vector<float> y = accumulate ? y0 : std::vector<float>(size_t(M * N), std::nanf(""));
  backend.linear_int8(y.data(), x.data(), w.q.data(), w.scale.data(), M, N, K, accumulate);
  const double half = 0.5 * (1 + 1e-5);  // half a step, and the float rounding of v / s
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double want = accumulate ? double(y0[size_t(m * N + n)]) : 0.0, quant = 0, inflated = 0;
      for (int64_t g = 0; g < G; ++g) {
        const double sx = group_max(x, m, K, g) / 127 * (1 + 1e-6);
        const double sw = group_max(W, n, K, g) / 127 * (1 + 1e-6);
        for (int64_t k = g * kInt8Group; k < std::min(K, (g + 1) * kInt8Group); ++k) {
          const double a = x[size_t(m * K + k)], b = W[size_t(n * K + k)];
          want += a * b;
          quant += (std::fabs(a) + half * sx) * half * sw + std::fabs(b) * half * sx;
          inflated += (std::fabs(a) + half * sx) * (std::fabs(b) + half * sw);
        }
      }
      const double u = ref::unit_roundoff(DType::f32);
      const double bound = quant + fp32_bound(K, inflated) +
                           (accumulate ? u * (std::fabs(want) + inflated) : 0.0);
      ASSERT_LE(std::fabs(double(y[size_t(m * N + n)]) - want), bound)
          << "y[" << m << ", " << n << "] isa " << isa_name(active_isa());
    }
}

std::string int8_name(const ::testing::TestParamInfo<std::tuple<Dims, bool>>& info) {
  const auto [d, acc] = info.param;
  return std::to_string(d.M) + "x" + std::to_string(d.N) + "x" + std::to_string(d.K) +
         (acc ? "_acc" : "_set");
}

// A vector, decode steps of 3, 6 and 8 sequences (x rows past a pass of 4, weight
// rows past a block of 4 and a tile of 32, K past a group), a prefill-sized M and
// the Stories110M classifier's shape for one row.
INSTANTIATE_TEST_SUITE_P(Shapes, Int8Linear,
                         ::testing::Combine(::testing::Values(Dims{1, 1, 1}, Dims{1, 7, 36},
                                                              Dims{3, 517, 768}, Dims{6, 129, 97},
                                                              Dims{8, 66, 515}, Dims{37, 45, 200},
                                                              Dims{1, 4000, 768}),
                                            ::testing::Bool()),
                         int8_name);

// Every body on the same quantized rows, whatever the dispatch would pick here.
TEST(Int8Linear, EveryBodyGivesTheExactProductOnGridOperands) {
  const int64_t M = 5, N = 38, K = 333;
  const std::vector<float> x = grid_matrix(M, K, 0.25, 1);
  const std::vector<float> W = grid_matrix(N, K, 1.0 / 64, 2);
  const Quantized w = quantize(W, N, K);
  std::vector<uint8_t> workspace(cpu::int8_workspace_bytes(M, K) + 64);
  void* aligned = workspace.data() + (64 - reinterpret_cast<uintptr_t>(workspace.data()) % 64) % 64;
  const cpu::Int8Rows rows = cpu::quantize_int8_rows(aligned, x.data(), M, K);
  const CpuFeatures& f = cpu_features();
  std::vector<std::string> bodies = {"scalar"};
  if (f.avx2) bodies.push_back("avx2");
  if (f.avx512) bodies.push_back("avx512");
  if (f.avx512_vnni) bodies.push_back("avx512-vnni");
  for (const std::string& body : bodies) {
    std::vector<float> y(size_t(M * N), std::nanf(""));
    if (body == "scalar") cpu::int8_body_scalar(y.data(), rows, w.q.data(), w.scale.data(), M, N, K, false);
    if (body == "avx2") cpu::int8_body_avx2(y.data(), rows, w.q.data(), w.scale.data(), M, N, K, false);
    if (body == "avx512" || body == "avx512-vnni")
      cpu::int8_body_avx512(y.data(), rows, w.q.data(), w.scale.data(), M, N, K, false,
                            body == "avx512-vnni");
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double want = 0, sum_abs = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double p = double(x[size_t(m * K + k)]) * double(W[size_t(n * K + k)]);
          want += p;
          sum_abs += std::fabs(p);
        }
        ASSERT_LE(std::fabs(double(y[size_t(m * N + n)]) - want), fp32_bound(K, sum_abs))
            << body << " y[" << m << ", " << n << "]";
      }
  }
}

TEST(Int8Linear, NonFiniteActivationsGiveNaNNotACrash) {
  const int64_t M = 2, N = 3, K = 70;
  std::vector<float> x = ref::to_float(ref::random_vector(M * K, 3));
  x[5] = std::numeric_limits<float>::infinity();
  x[K + 66] = std::nanf("");
  const std::vector<float> W = ref::to_float(ref::random_vector(N * K, 4));
  const Quantized w = quantize(W, N, K);
  CpuBackend backend;
  std::vector<float> y(size_t(M * N), 0.0f);
  backend.linear_int8(y.data(), x.data(), w.q.data(), w.scale.data(), M, N, K, false);
  for (float v : y) EXPECT_TRUE(std::isnan(v));
}

TEST(Int8Linear, EmptyAndNegativeShapes) {
  CpuBackend backend;
  std::vector<float> y(6, 3.0f), x(1);
  std::vector<uint8_t> q(1);
  std::vector<float> s(1);
  backend.linear_int8(y.data(), x.data(), q.data(), s.data(), 2, 3, 0, true);
  EXPECT_EQ(y, std::vector<float>(6, 3.0f));  // += an empty sum
  backend.linear_int8(y.data(), x.data(), q.data(), s.data(), 2, 3, 0, false);
  EXPECT_EQ(y, std::vector<float>(6, 0.0f));  // = an empty sum
  EXPECT_THROW(backend.linear_int8(y.data(), x.data(), q.data(), s.data(), -1, 3, 1, false),
               InputError);
}

}  // namespace
}  // namespace kiln
