// CPU backend GEMM family against the fp64 oracle: matmul (every transpose and
// accumulate combination, fp32 and bf16), cast (bit-exact bf16 rounding), the fused
// classifier + cross-entropy (losses, dx, dW; ignored targets; chunking), and the
// oneDNN primitive cache.
//
// Errors are checked element by element against bounds derived from the
// arithmetic (u = unit roundoff, k = 8 the safety factor of derived_tolerance):
//   a dot product of length K in fp32:  |err| <= k (sqrt(K) + 2) u  sum_k |a_k b_k|
// (a probabilistic rounding-error bound, Higham & Mary 2019), so a result near
// zero through cancellation is judged against the size of what was summed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/bf16_convert.h"
#include "backend/cpu/classifier.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm_cache.h"
#include "backend/cpu/gemv.h"
#include "core/error.h"
#include "core/rng.h"
#include "reference/compare.h"
#include "reference/reference_ops.h"

using namespace kiln;
using ref::Vec;

namespace {

constexpr double kSafety = 8.0;  // the k of derived_tolerance

// oneDNN has bf16 matmul kernels only from AVX-512 up; tests run capped too.
bool bf16_gemm_available() { return active_isa() == Isa::avx512; }

#define SKIP_IF_NO_BF16(dtype)                          \
  if ((dtype) == DType::bf16 && !bf16_gemm_available()) \
  GTEST_SKIP() << "bf16 GEMM needs AVX-512 (active ISA: " << isa_name(active_isa()) << ")"

// Kiln's own few-row kernel (a linear layer, y = x W^T, M <= kGemvMaxRows) runs
// bf16 at every ISA cap; the rest of bf16 is oneDNN's.
bool bf16_matmul_available(int64_t M, bool trans_a, bool trans_b) {
  return bf16_gemm_available() || (!trans_a && trans_b && M <= cpu::kGemvMaxRows);
}

// A GEMM operand as the backend sees it (fp32 or bf16 bits) and the exact values it holds.
struct Operand {
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  Vec held;    // the values the backend really multiplies (bf16-rounded for bf16)
  Vec source;  // the fp32 values before any bf16 rounding

  Operand(const Vec& values, DType dtype) {
    f32 = ref::to_float(values);
    source = ref::to_double(f32);
    if (dtype == DType::bf16) {
      bf16.resize(f32.size());
      for (size_t i = 0; i < f32.size(); ++i) bf16[i] = float_to_bf16(f32[i]).bits;
      held = ref::round_to_bf16(source);
    } else {
      held = source;
    }
  }
  const void* data() const {
    return bf16.empty() ? static_cast<const void*>(f32.data()) : bf16.data();
  }
};

Vec abs_of(const Vec& v) {
  Vec out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(v[i]);
  return out;
}

// The worst |got - want| / bound over all elements (<= 1 passes); a zero bound
// demands an exact match. Reports where the worst element is.
struct Worst {
  double ratio = 0.0;
  size_t index = 0;
};
Worst worst_ratio(const std::vector<float>& got, const Vec& want, const Vec& bound) {
  Worst worst;
  if (got.size() != want.size() || want.size() != bound.size()) return {INFINITY, 0};
  for (size_t i = 0; i < got.size(); ++i) {
    const double diff = std::fabs(double(got[i]) - want[i]);
    double ratio = bound[i] > 0 ? diff / bound[i] : (diff == 0 ? 0.0 : INFINITY);
    if (std::isnan(ratio) || !std::isfinite(double(got[i]))) ratio = INFINITY;
    if (ratio > worst.ratio) worst = {ratio, i};
  }
  return worst;
}

std::string dtype_label(DType dtype) { return dtype_name(dtype); }

// ---------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------

struct Dims {
  int64_t M, N, K;
};
using MatmulParam =
    std::tuple<Dims, bool, bool, bool, DType>;  // dims, trans_a, trans_b, acc, dtype

class MatmulTest : public ::testing::TestWithParam<MatmulParam> {};

TEST_P(MatmulTest, MatchesFp64Reference) {
  const auto [dims, trans_a, trans_b, accumulate, dtype] = GetParam();
  const auto [M, N, K] = dims;
  if (dtype == DType::bf16 && !bf16_matmul_available(M, trans_a, trans_b))
    GTEST_SKIP() << "bf16 GEMM needs AVX-512 (active ISA: " << isa_name(active_isa()) << ")";
  const uint64_t seed = uint64_t(M * 1000003 + N * 1009 + K);
  const Operand A(ref::random_vector(M * K, seed), dtype);      // [M, K] or [K, M]
  const Operand B(ref::random_vector(K * N, seed + 1), dtype);  // [K, N] or [N, K]
  const Vec C0 = accumulate ? ref::to_double(ref::to_float(ref::random_vector(M * N, seed + 2)))
                            : Vec(size_t(M * N), 0.0);

  CpuBackend backend;
  std::vector<float> C = ref::to_float(C0);
  if (!accumulate) std::fill(C.begin(), C.end(), std::nanf(""));  // (=) must not read C
  backend.matmul(C.data(), A.data(), B.data(), dtype, M, N, K, trans_a, trans_b, accumulate);

  // What fp32 accumulation of the held operands allows:
  //   |err| <= k (sqrt(K) + 2) u32 (|C0| + |A| |B|)      (+2: the product and the final add)
  const double tol32 = ref::derived_tolerance(DType::f32, std::sqrt(double(K)) + 2.0, kSafety);
  Vec want = C0, scale = abs_of(C0);
  ref::matmul(want, A.held, B.held, M, N, K, trans_a, trans_b, accumulate);
  ref::matmul(scale, abs_of(A.held), abs_of(B.held), M, N, K, trans_a, trans_b, accumulate);
  Vec bound(scale.size());
  for (size_t i = 0; i < bound.size(); ++i) bound[i] = tol32 * scale[i];
  const Worst held = worst_ratio(C, want, bound);
  EXPECT_LE(held.ratio, 1.0) << "vs the product of the operands as held, element " << held.index
                             << " got " << C[held.index] << " want " << want[held.index];

  if (dtype == DType::bf16) {
    // Against the unrounded fp32 operands: each product a b picks up at most
    // (2 u16 + u16^2) |a b| from rounding a and b to bf16, then the fp32 bound above.
    const double u16 = ref::unit_roundoff(DType::bf16);
    Vec exact = C0, exact_scale = abs_of(C0);
    ref::matmul(exact, A.source, B.source, M, N, K, trans_a, trans_b, accumulate);
    ref::matmul(exact_scale, abs_of(A.source), abs_of(B.source), M, N, K, trans_a, trans_b,
                accumulate);
    for (size_t i = 0; i < bound.size(); ++i)
      bound[i] = (2 * u16 + u16 * u16 + tol32 * (1 + u16) * (1 + u16)) * exact_scale[i];
    const Worst source = worst_ratio(C, exact, bound);
    EXPECT_LE(source.ratio, 1.0) << "vs the unrounded product, element " << source.index;
  }
}

std::string matmul_name(const ::testing::TestParamInfo<MatmulParam>& info) {
  const auto [dims, ta, tb, acc, dtype] = info.param;
  return std::to_string(dims.M) + "x" + std::to_string(dims.N) + "x" + std::to_string(dims.K) +
         (ta ? "_At" : "_A") + (tb ? "Bt" : "B") + (acc ? "_acc_" : "_set_") + dtype_label(dtype);
}

// M, N, K drawn from {1, 7, 36, 100, 257}: vectors, tiny, tile-unaligned and a prime;
// 3 x 517 x 768 is a decode step of 3 sequences (the few-row kernel, on all threads);
// 6 x 129 x 97 and 8 x 66 x 515 take the few-row kernel's tails (rows of x past a
// pass of 4, weight rows past a block of 4, K past a vector).
INSTANTIATE_TEST_SUITE_P(OddShapes, MatmulTest,
                         ::testing::Combine(::testing::Values(Dims{1, 1, 1}, Dims{1, 7, 36},
                                                              Dims{7, 1, 257}, Dims{36, 100, 7},
                                                              Dims{100, 257, 1}, Dims{257, 36, 100},
                                                              Dims{7, 257, 257}, Dims{257, 257, 36},
                                                              Dims{100, 100, 100},
                                                              Dims{3, 517, 768}, Dims{6, 129, 97},
                                                              Dims{8, 66, 515}),
                                            ::testing::Bool(), ::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(DType::f32, DType::bf16)),
                         matmul_name);

// Both AVX-512 bf16 bodies of the few-row kernel, whatever this CPU picks at run
// time: VDPBF16PS (where the CPU has AVX512_BF16) and bf16 widened to fp32.
TEST(Matmul, FewRowBf16BodiesMatchFp64Reference) {
  if (!cpu_features().avx512 || active_isa() != Isa::avx512)
    GTEST_SKIP() << "AVX-512 bodies (active ISA: " << isa_name(active_isa()) << ")";
  const int64_t M = 5, N = 37, K = 1001;
  const Operand x(ref::random_vector(M * K, 71), DType::bf16);
  const Operand w(ref::random_vector(N * K, 72), DType::bf16);
  Vec want(size_t(M * N), 0.0), scale(size_t(M * N), 0.0);
  ref::matmul(want, x.held, w.held, M, N, K, false, true, false);
  ref::matmul(scale, abs_of(x.held), abs_of(w.held), M, N, K, false, true, false);
  const double tol32 = ref::derived_tolerance(DType::f32, std::sqrt(double(K)) + 2.0, kSafety);
  Vec bound(scale.size());
  for (size_t i = 0; i < bound.size(); ++i) bound[i] = tol32 * scale[i];
  for (const bool hw : {false, true}) {
    if (hw && !cpu_features().avx512_bf16) continue;
    std::vector<float> y(size_t(M * N), std::nanf(""));
    cpu::gemv_bf16_avx512(y.data(), x.bf16.data(), w.bf16.data(), M, N, K, false, hw);
    const Worst got = worst_ratio(y, want, bound);
    EXPECT_LE(got.ratio, 1.0) << "hw_bf16 " << hw << " element " << got.index << " got "
                              << y[got.index] << " want " << want[got.index];
  }
}

TEST(Matmul, EmptySumOverwritesOrKeeps) {
  CpuBackend backend;
  std::vector<float> C(6, 3.0f), A(1), B(1);
  backend.matmul(C.data(), A.data(), B.data(), DType::f32, 2, 3, 0, false, false, true);
  EXPECT_EQ(C, std::vector<float>(6, 3.0f));  // += nothing
  backend.matmul(C.data(), A.data(), B.data(), DType::f32, 2, 3, 0, false, false, false);
  EXPECT_EQ(C, std::vector<float>(6, 0.0f));  // = empty sum
}

TEST(Matmul, RejectsNegativeAndOverflowingShapes) {
  CpuBackend backend;
  float C = 0, A = 0, B = 0;
  EXPECT_THROW(backend.matmul(&C, &A, &B, DType::f32, -1, 1, 1, false, false, false), InputError);
  const int64_t huge = int64_t(1) << 40;
  EXPECT_THROW(backend.matmul(&C, &A, &B, DType::f32, huge, huge, 1, false, false, false),
               InputError);
}

// Each shape gets its primitive once; a repeated call only looks it up.
TEST(Matmul, PrimitiveCacheIsReused) {
  CpuBackend backend;
  const Vec a = ref::random_vector(37 * 19, 1), b = ref::random_vector(19 * 23, 2);
  std::vector<float> A = ref::to_float(a), B = ref::to_float(b), C(37 * 23), first;
  backend.matmul(C.data(), A.data(), B.data(), DType::f32, 37, 23, 19, false, false, false);
  first = C;
  const int64_t created = gemm_primitives_created();
  for (int rep = 0; rep < 5; ++rep)
    backend.matmul(C.data(), A.data(), B.data(), DType::f32, 37, 23, 19, false, false, false);
  EXPECT_EQ(gemm_primitives_created(), created);
  EXPECT_EQ(C, first);  // same primitive, same buffers: same bits
  // A new shape (here: the same dims, accumulating) is a new primitive, created once.
  backend.matmul(C.data(), A.data(), B.data(), DType::f32, 37, 23, 19, false, false, true);
  backend.matmul(C.data(), A.data(), B.data(), DType::f32, 37, 23, 19, false, false, true);
  EXPECT_EQ(gemm_primitives_created(), created + 1);
}

// ---------------------------------------------------------------------------
// cast
// ---------------------------------------------------------------------------

// Every class of fp32 value: normals, subnormals, exact ties, zeros, infinities,
// NaNs (quiet and signalling), and the largest finite value (rounds to +inf).
std::vector<float> cast_inputs(int64_t n) {
  Rng rng(99, 3);
  std::vector<uint32_t> bits(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u = rng.next_u32();
    switch (i % 8) {
      case 0:
        u &= 0x807fffffu;
        break;  // subnormal (or zero)
      case 1:
        u = (u & 0xffff0000u) | 0x8000u;
        break;  // exact tie
      case 2:
        u = (u & 0xffff0000u) | 0x7fffu;
        break;  // just below a tie
      default:
        break;
    }
    bits[i] = u;
  }
  const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                               0x7fc00000u, 0x7f800001u, 0xffbfffffu, 0x7f7fffffu,
                               0x00000001u, 0x807fffffu, 0x3f808000u, 0x3f818000u};
  for (size_t s = 0; s < std::size(specials) && s < bits.size(); ++s)
    bits[s * 7 % bits.size()] = specials[s];
  std::vector<float> out(bits.size());
  std::memcpy(out.data(), bits.data(), bits.size() * 4);
  return out;
}

TEST(Cast, Bf16IsBitIdenticalToFloatToBf16) {
  CpuBackend backend;
  // Sizes around the 16-lane vector and the 16 Ki-value thread block, plus a large one.
  for (int64_t n : {1, 15, 16, 17, 33, 16383, 16385, 100003}) {
    const std::vector<float> src = cast_inputs(n);
    std::vector<uint16_t> dst(size_t(n) + 1, 0xabcd);
    backend.cast(dst.data(), DType::bf16, src.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, &src[i], 4);
      ASSERT_EQ(dst[i], float_to_bf16(src[i]).bits)
          << "n " << n << " input bits 0x" << std::hex << u;
    }
    EXPECT_EQ(dst[n], 0xabcd) << "wrote past the end, n " << n;
  }
}

// Both AVX-512 bodies (integer rounding and VCVTNEPS2BF16 + subnormal fix-up),
// whatever the active ISA cap, where the CPU has them.
TEST(Cast, Avx512KernelsAreBitIdentical) {
  const CpuFeatures& f = cpu_features();
  if (!f.avx512) GTEST_SKIP() << "CPU has no AVX-512";
  for (bool hw : {false, true}) {
    if (hw && !f.avx512_bf16) continue;
    for (int64_t n : {1, 7, 16, 31, 4099}) {
      const std::vector<float> src = cast_inputs(n);
      std::vector<uint16_t> dst(size_t(n) + 1, 0xabcd);
      f32_to_bf16_avx512(dst.data(), src.data(), n, hw);
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(dst[i], float_to_bf16(src[i]).bits) << "hw " << hw << " index " << i;
      EXPECT_EQ(dst[n], 0xabcd);
    }
  }
}

TEST(Cast, Fp32IsACopy) {
  CpuBackend backend;
  const std::vector<float> src = cast_inputs(1001);
  std::vector<float> dst(1001);
  backend.cast(dst.data(), DType::f32, src.data(), 1001);
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), 1001 * 4), 0);
}

// ---------------------------------------------------------------------------
// classifier + cross-entropy
// ---------------------------------------------------------------------------

struct ClassifierCase {
  int64_t N;
  int C, V;
  DType dtype;
  int64_t chunk;  // 0: the automatic chunk size
};

// Runs the backend and the oracle on one case and checks losses, dx, dW.
void check_classifier(const ClassifierCase& cc, bool backward) {
  const auto [N, C, V, dtype, chunk] = cc;
  const uint64_t seed = uint64_t(N * 7919 + C * 31 + V);
  const Operand x(ref::random_vector(N * C, seed), dtype);               // [N, C]
  const Operand W(ref::random_vector(int64_t(V) * C, seed + 1), dtype);  // [V, C]
  std::vector<int32_t> targets(static_cast<size_t>(N));
  Rng rng(seed, 11);
  int valid = 0;
  for (int64_t i = 0; i < N; ++i) {
    targets[i] = (i % 5 == 3) ? -1 : int32_t(rng.below(uint64_t(V)));  // some rows ignored
    valid += targets[i] >= 0;
  }
  const double dloss = 1.0 / std::max(valid, 1);  // the mean over counted rows
  const Vec dW0 = ref::to_double(ref::to_float(ref::random_vector(int64_t(V) * C, seed + 2, 0.1)));

  CpuBackend backend;
  set_classifier_chunk_rows(chunk);
  const int64_t rows_per_chunk = std::min(classifier_chunk_rows(V), N);
  std::vector<float> losses(size_t(N), std::nanf("")), dx(size_t(N) * C, std::nanf(""));
  std::vector<float> dW = ref::to_float(dW0);
  backend.classifier_forward_backward(losses.data(), backward ? dx.data() : nullptr,
                                      backward ? dW.data() : nullptr, x.data(), W.data(), dtype,
                                      targets.data(), N, C, V, float(dloss));
  set_classifier_chunk_rows(0);

  Vec want_losses, want_dx, want_dW = dW0;
  ref::classifier_forward_backward(want_losses, backward ? &want_dx : nullptr,
                                   backward ? &want_dW : nullptr, x.held, W.held, targets, N, C, V,
                                   dloss);

  // The error budget, row by row, from the held operands:
  //   logits: |dl_ij| <= k (sqrt(C) + 2) u S_ij,  S_ij = sum_c |x_ic W_jc|       (fp32 GEMM)
  //   lse:    + k u (sqrt(V) + 4 + |lse|)        (exps, their sum, the log, the add)
  //   loss = lse - l_t:  logit bound + lse bound
  //   dlogits_ij relative to (p_ij + onehot_ij) |dloss|: the two bounds above (exp of a
  //     perturbed argument), + 5 k u (exp, divide, scale, subtract), + u16 for bf16 storage
  //   dx, dW: that, times sum (p + onehot) |W| (or |x|), + the fp32 GEMM bound of
  //     depth V (or N, plus one add per chunk for dW's accumulation across chunks)
  const double u = ref::unit_roundoff(DType::f32);
  const double u_store = dtype == DType::bf16 ? ref::unit_roundoff(DType::bf16) : 0.0;
  Vec logits, abs_logits;
  ref::matmul(logits, x.held, W.held, N, V, C, false, true, false);
  ref::matmul(abs_logits, abs_of(x.held), abs_of(W.held), N, V, C, false, true, false);
  Vec loss_bound(static_cast<size_t>(N), 0.0), eps(size_t(N), 0.0), weight(size_t(N) * V, 0.0);
  for (int64_t i = 0; i < N; ++i) {
    if (targets[i] < 0) continue;  // loss and gradient must be exactly zero
    double max_logit = -INFINITY, max_scale = 0.0;
    for (int j = 0; j < V; ++j) {
      max_logit = std::max(max_logit, logits[i * V + j]);
      max_scale = std::max(max_scale, abs_logits[i * V + j]);
    }
    double sum = 0.0;
    for (int j = 0; j < V; ++j) sum += std::exp(logits[i * V + j] - max_logit);
    const double lse = max_logit + std::log(sum);
    const double logit_err = kSafety * (std::sqrt(double(C)) + 2) * u * max_scale;
    const double lse_err = logit_err + kSafety * u * (std::sqrt(double(V)) + 4 + std::fabs(lse));
    loss_bound[i] = logit_err + lse_err;
    eps[i] = logit_err + lse_err + 5 * kSafety * u + u_store;
    for (int j = 0; j < V; ++j)
      weight[i * V + j] =
          (std::exp(logits[i * V + j] - lse) + (j == targets[i] ? 1.0 : 0.0)) * dloss;
  }
  const Worst loss = worst_ratio(losses, want_losses, loss_bound);
  EXPECT_LE(loss.ratio, 1.0) << "loss of row " << loss.index << ": got " << losses[loss.index]
                             << " want " << want_losses[loss.index];
  if (!backward) {
    EXPECT_EQ(dW, ref::to_float(dW0));
    return;
  }

  const int64_t n_chunks = (N + rows_per_chunk - 1) / rows_per_chunk;
  const double gemm_dx = kSafety * (std::sqrt(double(V)) + 2) * u * (1 + u_store);
  const double gemm_dW =
      kSafety * (std::sqrt(double(rows_per_chunk)) + double(n_chunks) + 2) * u * (1 + u_store);
  Vec dx_bound(size_t(N) * C, 0.0), dW_bound(size_t(V) * C, 0.0);
  // Every chunk's accumulate step rounds the running dW, which holds dW0 throughout.
  for (size_t i = 0; i < dW_bound.size(); ++i)
    dW_bound[i] = kSafety * (double(n_chunks) + 1) * u * std::fabs(dW0[i]);
  for (int64_t i = 0; i < N; ++i)
    for (int j = 0; j < V; ++j) {
      const double w = weight[i * V + j];
      if (w == 0) continue;
      for (int c = 0; c < C; ++c) {
        dx_bound[i * C + c] += (eps[i] + gemm_dx) * w * std::fabs(W.held[size_t(j) * C + c]);
        dW_bound[size_t(j) * C + c] += (eps[i] + gemm_dW) * w * std::fabs(x.held[i * C + c]);
      }
    }
  const Worst wdx = worst_ratio(dx, want_dx, dx_bound);
  EXPECT_LE(wdx.ratio, 1.0) << "dx element " << wdx.index << ": got " << dx[wdx.index] << " want "
                            << want_dx[wdx.index];
  const Worst wdW = worst_ratio(dW, want_dW, dW_bound);
  EXPECT_LE(wdW.ratio, 1.0) << "dW element " << wdW.index << ": got " << dW[wdW.index] << " want "
                            << want_dW[wdW.index];
}

using ClassifierParam = std::tuple<int64_t, int, int, DType>;  // N, V, C, dtype
class ClassifierTest : public ::testing::TestWithParam<ClassifierParam> {};

TEST_P(ClassifierTest, ForwardBackwardMatchesReference) {
  const auto [N, V, C, dtype] = GetParam();
  SKIP_IF_NO_BF16(dtype);
  check_classifier({N, C, V, dtype, 0}, true);
}

TEST_P(ClassifierTest, ForwardOnlyMatchesReference) {
  const auto [N, V, C, dtype] = GetParam();
  SKIP_IF_NO_BF16(dtype);
  check_classifier({N, C, V, dtype, 0}, false);
}

std::string classifier_name(const ::testing::TestParamInfo<ClassifierParam>& info) {
  const auto [N, V, C, dtype] = info.param;
  return "N" + std::to_string(N) + "_V" + std::to_string(V) + "_C" + std::to_string(C) + "_" +
         dtype_label(dtype);
}

INSTANTIATE_TEST_SUITE_P(OddShapes, ClassifierTest,
                         ::testing::Combine(::testing::Values<int64_t>(1, 7, 257),
                                            ::testing::Values(50, 517), ::testing::Values(36, 64),
                                            ::testing::Values(DType::f32, DType::bf16)),
                         classifier_name);

// N larger than the chunk: full chunks and a tail chunk (257 = 16 * 16 + 1 = 2 * 100 + 57).
class ClassifierChunkTest : public ::testing::TestWithParam<std::tuple<int64_t, DType>> {};

TEST_P(ClassifierChunkTest, ChunkedMatchesReference) {
  const auto [chunk, dtype] = GetParam();
  SKIP_IF_NO_BF16(dtype);
  check_classifier({257, 64, 517, dtype, chunk}, true);
}

INSTANTIATE_TEST_SUITE_P(Chunks, ClassifierChunkTest,
                         ::testing::Combine(::testing::Values<int64_t>(1, 16, 100),
                                            ::testing::Values(DType::f32, DType::bf16)),
                         [](const auto& info) {
                           return "chunk" + std::to_string(std::get<0>(info.param)) + "_" +
                                  dtype_label(std::get<1>(info.param));
                         });

TEST(Classifier, ChunkHoldsAtMost32MiBOfLogits) {
  set_classifier_chunk_rows(0);
  for (int64_t V : {50, 517, 32000, 151936, 20000000}) {
    const int64_t rows = classifier_chunk_rows(V);
    EXPECT_GE(rows, 1);
    if (rows > 1) {
      EXPECT_LE(rows * V * 4, kClassifierChunkBytes) << "V " << V;
    }
    if (rows >= 16) {
      EXPECT_EQ(rows % 16, 0) << "V " << V;
    }
  }
  EXPECT_EQ(classifier_chunk_rows(32000), 256);
}

TEST(Classifier, TargetOutsideVocabularyIsRejectedBeforeWriting) {
  CpuBackend backend;
  const int C = 8, V = 10, N = 3;
  std::vector<float> x(N * C, 0.5f), W(V * C, 0.25f), losses(N, -7.0f), dx(N * C, -7.0f),
      dW(V * C, -7.0f);
  std::vector<int32_t> targets = {1, 10, 2};
  EXPECT_THROW(
      backend.classifier_forward_backward(losses.data(), dx.data(), dW.data(), x.data(), W.data(),
                                          DType::f32, targets.data(), N, C, V, 1.0f),
      InputError);
  EXPECT_EQ(losses, std::vector<float>(N, -7.0f));
  EXPECT_EQ(dW, std::vector<float>(V * C, -7.0f));
}

TEST(Classifier, RepeatedStepsReuseThePrimitives) {
  CpuBackend backend;
  const int C = 36, V = 50, N = 41;
  set_classifier_chunk_rows(16);  // two shapes: 16 rows and the 9-row tail
  const std::vector<float> x = ref::to_float(ref::random_vector(N * C, 5));
  const std::vector<float> W = ref::to_float(ref::random_vector(V * C, 6));
  std::vector<int32_t> targets(N, 3);
  std::vector<float> losses(N), dx(N * C), dW(V * C, 0.0f);
  auto step = [&] {
    backend.classifier_forward_backward(losses.data(), dx.data(), dW.data(), x.data(), W.data(),
                                        DType::f32, targets.data(), N, C, V, 1.0f);
  };
  step();
  const int64_t created = gemm_primitives_created();
  step();
  step();
  set_classifier_chunk_rows(0);
  EXPECT_EQ(gemm_primitives_created(), created);
}

}  // namespace
