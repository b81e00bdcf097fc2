// The CUDA backend's op harness: every CudaBackend op against the fp64 oracle
// (tests/reference/reference_ops.h) and the CPU backend, on random inputs and odd
// shapes, with tolerances derived from the unit roundoff of the arithmetic (fp32,
// or bf16 where GEMM operands are bf16); the whole model step on the GPU against the
// fp64 model oracle; bitwise determinism; CUDA graph capture and replay.
//
// Every test needs a CUDA device and skips, naming the reason, when there is none
// (no driver, no device, or a build without CUDA). The test that make_cuda_backend()
// explains a missing device runs everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda_factory.h"
#include "core/error.h"
#include "core/rng.h"
#include "nn/model_step.h"
#include "reference/compare.h"
#include "reference/model_fixture.h"
#include "reference/reference_model.h"
#include "reference/reference_ops.h"
#ifdef KILN_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

using namespace kiln;
using ref::Vec;

// Runs in every build: without a usable device the factory returns nothing and says why.
TEST(CudaFactory, ExplainsAMissingDevice) {
  std::string error;
  std::unique_ptr<Backend> backend = make_cuda_backend(DType::bf16, &error);
#ifdef KILN_HAVE_CUDA
  EXPECT_TRUE(cuda_backend_built());
  std::string why;
  if (cuda_available(&why)) {
    ASSERT_TRUE(backend) << error;
    EXPECT_EQ(backend->compute_dtype(), DType::bf16);
    EXPECT_NE(backend->name().find("cuda"), std::string::npos) << backend->name();
    return;
  }
  EXPECT_FALSE(backend);
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(error, why);
  EXPECT_THROW(CudaBackend{}, RuntimeError)
      << "constructing without a device must throw, not abort";
#else
  EXPECT_FALSE(cuda_backend_built());
  EXPECT_FALSE(backend);
  EXPECT_NE(error.find("without CUDA"), std::string::npos) << error;
#endif
}

#ifndef KILN_HAVE_CUDA

TEST(CudaOps, NeedACudaBuild) { GTEST_SKIP() << "built without CUDA (KILN_CUDA=OFF or no nvcc)"; }

#else  // KILN_HAVE_CUDA

namespace {

constexpr double kSafety = 8.0;  // the k of derived_tolerance

const std::string& cuda_missing() {
  static const std::string reason = [] {
    std::string why;
    return cuda_available(&why) ? std::string() : why;
  }();
  return reason;
}

// Skips without a device, except where KILN_REQUIRE_CUDA=1 (scripts/gpu-check.sh sets
// it on the GPU machine): there a missing device is a failure, not a skip.
#define REQUIRE_CUDA()                                                        \
  do {                                                                        \
    if (!cuda_missing().empty()) {                                            \
      const char* require_ = std::getenv("KILN_REQUIRE_CUDA");                \
      if (require_ && std::string(require_) == "1") FAIL() << cuda_missing(); \
      GTEST_SKIP() << cuda_missing();                                         \
    }                                                                         \
  } while (0)

// One backend per (compute dtype, attention kernel), shared by the tests and torn
// down before the CUDA runtime is (a gtest environment).
struct BackendPool : ::testing::Environment {
  std::map<std::pair<DType, CudaAttentionKernel>, std::unique_ptr<CudaBackend> > backends;
  void TearDown() override { backends.clear(); }
};
BackendPool* const g_pool =
    static_cast<BackendPool*>(::testing::AddGlobalTestEnvironment(new BackendPool));

CudaBackend& gpu(DType dtype = DType::f32,
                 CudaAttentionKernel attention = CudaAttentionKernel::auto_) {
  auto& slot = g_pool->backends[{dtype, attention}];
  if (!slot) {
    CudaBackendOptions options;
    options.compute_dtype = dtype;
    options.attention = attention;
    slot = std::make_unique<CudaBackend>(options);
  }
  return *slot;
}

// Device buffers owned by one test; every copy goes through the backend.
class Device {
 public:
  explicit Device(Backend& be) : be_(be) {}
  ~Device() {
    for (void* p : owned_) be_.release(p);
  }
  template <class T>
  T* alloc(size_t n) {
    void* p = be_.alloc((n ? n : 1) * sizeof(T));
    owned_.push_back(p);
    return static_cast<T*>(p);
  }
  template <class T>
  T* put(const std::vector<T>& host) {
    T* p = alloc<T>(host.size());
    be_.upload(p, host.data(), host.size() * sizeof(T));
    return p;
  }
  template <class T>
  void set(T* p, const std::vector<T>& host) {
    be_.upload(p, host.data(), host.size() * sizeof(T));
  }
  template <class T>
  std::vector<T> get(const T* p, size_t n) {
    std::vector<T> host(n);
    be_.download(host.data(), p, n * sizeof(T));
    return host;
  }

 private:
  Backend& be_;
  std::vector<void*> owned_;
};

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> random_floats(int64_t n, uint64_t seed, double scale = 1.0) {
  return ref::to_float(ref::random_vector(n, seed, scale));
}

std::vector<uint16_t> to_bf16_bits(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float_to_bf16(v[i]).bits;
  return out;
}

Vec abs_of(const Vec& v) {
  Vec out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = std::fabs(v[i]);
  return out;
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

int64_t bf16_ulp_distance(uint16_t a, uint16_t b) {
  auto ordered = [](uint16_t x) { return (x & 0x8000) ? -int64_t(x & 0x7fff) : int64_t(x); };
  return std::llabs(ordered(a) - ordered(b));
}

void expect_close(const std::vector<float>& got, const Vec& want, DType dtype, double depth,
                  const std::string& what, double k = kSafety) {
  const double err = ref::normalized_error(got, want);
  EXPECT_LE(err, ref::derived_tolerance(dtype, depth, k))
      << what << " (" << dtype_name(dtype) << ", depth " << depth << ", k " << k << ")";
}

// A bf16 result of an fp32 computation that is itself within fp32 rounding of
// `fp32_result`: each element at most one bf16 ulp from float_to_bf16 of it.
void expect_bf16_within_ulp(const std::vector<uint16_t>& got, const std::vector<float>& fp32_result,
                            const std::string& what) {
  ASSERT_EQ(got.size(), fp32_result.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    const uint16_t want = float_to_bf16(fp32_result[i]).bits;
    if (bf16_ulp_distance(got[i], want) > 1) {
      ADD_FAILURE() << what << ": element " << i << " is 0x" << std::hex << got[i]
                    << ", the fp32 result rounds to 0x" << want;
      return;
    }
  }
}

// The worst |got - want| / bound (<= 1 passes), as in test_ops_gemm.cpp.
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

// ---------------------------------------------------------------------------------
// matmul
// ---------------------------------------------------------------------------------

struct Dims {
  int64_t M, N, K;
};
// dims, trans_a, trans_b, accumulate, dtype, misaligned (operands one element off)
using MatmulParam = std::tuple<Dims, bool, bool, bool, DType, bool>;
class CudaMatmul : public ::testing::TestWithParam<MatmulParam> {};

TEST_P(CudaMatmul, MatchesFp64Reference) {
  REQUIRE_CUDA();
  const auto [dims, trans_a, trans_b, accumulate, dtype, misaligned] = GetParam();
  const auto [M, N, K] = dims;
  const uint64_t seed = uint64_t(M * 1000003 + N * 1009 + K);
  const std::vector<float> a32 = random_floats(M * K, seed), b32 = random_floats(K * N, seed + 1);
  const std::vector<float> c0 = random_floats(M * N, seed + 2);
  Vec a_held = ref::to_double(a32), b_held = ref::to_double(b32);
  if (dtype == DType::bf16) {
    a_held = ref::round_to_bf16(a_held);
    b_held = ref::round_to_bf16(b_held);
  }
  CudaBackend& be = gpu(dtype);
  Device dev(be);
  // Misaligned: every operand starts one element into its buffer, so cuBLASLt sees
  // 2- or 4-byte alignment (views into the flat parameter buffer do that).
  const size_t off = misaligned ? 1 : 0;
  auto operand = [&](const std::vector<float>& v) -> const void* {
    if (dtype == DType::f32) {
      std::vector<float> padded(off, 0.0f);
      padded.insert(padded.end(), v.begin(), v.end());
      return dev.put(padded) + off;
    }
    std::vector<uint16_t> padded(off, 0);
    const std::vector<uint16_t> bits = to_bf16_bits(v);
    padded.insert(padded.end(), bits.begin(), bits.end());
    return dev.put(padded) + off;
  };
  const void* A = operand(a32);
  const void* B = operand(b32);
  std::vector<float> c_init(off, 0.0f);
  if (accumulate)
    c_init.insert(c_init.end(), c0.begin(), c0.end());
  else
    c_init.insert(c_init.end(), size_t(M * N), kNaN);  // (=) must not read C
  float* C = dev.put(c_init) + off;
  be.matmul(C, A, B, dtype, M, N, K, trans_a, trans_b, accumulate);
  const std::vector<float> got = dev.get(C, size_t(M * N));

  // |err| <= k (sqrt(K) + 2) u32 (|C0| + |A| |B|) for fp32 accumulation of the held values.
  const Vec C0 = accumulate ? ref::to_double(c0) : Vec(size_t(M * N), 0.0);
  const double tol32 = ref::derived_tolerance(DType::f32, std::sqrt(double(K)) + 2.0, kSafety);
  Vec want = C0, scale = abs_of(C0);
  ref::matmul(want, a_held, b_held, M, N, K, trans_a, trans_b, accumulate);
  ref::matmul(scale, abs_of(a_held), abs_of(b_held), M, N, K, trans_a, trans_b, accumulate);
  Vec bound(scale.size());
  for (size_t i = 0; i < bound.size(); ++i) bound[i] = tol32 * scale[i];
  const Worst w = worst_ratio(got, want, bound);
  EXPECT_LE(w.ratio, 1.0) << "element " << w.index << " got " << got[w.index] << " want "
                          << want[w.index];
}

std::string matmul_name(const ::testing::TestParamInfo<MatmulParam>& info) {
  const auto [dims, ta, tb, acc, dtype, mis] = info.param;
  return std::to_string(dims.M) + "x" + std::to_string(dims.N) + "x" + std::to_string(dims.K) +
         (ta ? "_At" : "_A") + (tb ? "Bt" : "B") + (acc ? "_acc_" : "_set_") + dtype_name(dtype) +
         (mis ? "_misaligned" : "");
}

INSTANTIATE_TEST_SUITE_P(OddShapes, CudaMatmul,
                         ::testing::Combine(::testing::Values(Dims{1, 1, 1}, Dims{1, 7, 36},
                                                              Dims{7, 1, 257}, Dims{36, 100, 7},
                                                              Dims{100, 257, 1}, Dims{257, 36, 100},
                                                              Dims{7, 257, 257}, Dims{257, 257, 36},
                                                              Dims{128, 192, 320}),
                                            ::testing::Bool(), ::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(DType::f32, DType::bf16),
                                            ::testing::Values(false)),
                         matmul_name);
INSTANTIATE_TEST_SUITE_P(
    Misaligned, CudaMatmul,
    ::testing::Combine(::testing::Values(Dims{7, 36, 100}, Dims{64, 64, 64}, Dims{257, 36, 257}),
                       ::testing::Bool(), ::testing::Bool(), ::testing::Values(true),
                       ::testing::Values(DType::f32, DType::bf16), ::testing::Values(true)),
    matmul_name);

TEST(CudaMatmulPlans, CreatedOncePerShape) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu(DType::f32);
  Device dev(be);
  const float* A = dev.put(random_floats(37 * 19, 1));
  const float* B = dev.put(random_floats(19 * 23, 2));
  float* C = dev.alloc<float>(37 * 23);
  be.matmul(C, A, B, DType::f32, 37, 23, 19, false, false, false);
  const std::vector<float> first = dev.get(C, 37 * 23);
  const int64_t created = be.gemm_plans_created();
  for (int rep = 0; rep < 5; ++rep) be.matmul(C, A, B, DType::f32, 37, 23, 19, false, false, false);
  EXPECT_EQ(be.gemm_plans_created(), created);
  EXPECT_TRUE(bitwise_equal(dev.get(C, 37 * 23), first)) << "same plan, same bits";
}

TEST(CudaMatmulPlans, EmptySumAndBadShapes) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu(DType::f32);
  Device dev(be);
  float* C = dev.put(std::vector<float>(6, 3.0f));
  const float* A = dev.alloc<float>(1);
  be.matmul(C, A, A, DType::f32, 2, 3, 0, false, false, true);
  EXPECT_EQ(dev.get(C, 6), std::vector<float>(6, 3.0f));  // += nothing
  be.matmul(C, A, A, DType::f32, 2, 3, 0, false, false, false);
  EXPECT_EQ(dev.get(C, 6), std::vector<float>(6, 0.0f));  // = empty sum
  EXPECT_THROW(be.matmul(C, A, A, DType::f32, -1, 1, 1, false, false, false), InputError);
}

// ---------------------------------------------------------------------------------
// cast, add, embedding
// ---------------------------------------------------------------------------------

TEST(CudaElementwise, CastIsBitIdenticalToFloatToBf16) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  Device dev(be);
  for (int64_t n : {1, 15, 257, 100003}) {
    Rng rng(99 + n, 3);
    std::vector<uint32_t> bits(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u = rng.next_u32();
      if (i % 4 == 1) u = (u & 0xffff0000u) | 0x8000u;  // exact ties
      if (i % 4 == 2) u &= 0x807fffffu;                 // subnormals
      bits[size_t(i)] = u;
    }
    const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u,
                                 0x7f800001u, 0x7f7fffffu, 0x80000000u};
    for (size_t s = 0; s < std::size(specials) && s < bits.size(); ++s) bits[s] = specials[s];
    std::vector<float> src(bits.size());
    std::memcpy(src.data(), bits.data(), bits.size() * 4);
    const float* d_src = dev.put(src);
    uint16_t* d_dst = dev.put(std::vector<uint16_t>(size_t(n) + 1, 0xabcd));
    be.cast(d_dst, DType::bf16, d_src, n);
    const std::vector<uint16_t> got = dev.get(d_dst, size_t(n) + 1);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(got[size_t(i)], float_to_bf16(src[size_t(i)]).bits) << "n " << n << " index " << i;
    EXPECT_EQ(got[size_t(n)], 0xabcd) << "wrote past the end";
    float* d_copy = dev.alloc<float>(size_t(n));
    be.cast(d_copy, DType::f32, d_src, n);
    EXPECT_EQ(std::memcmp(dev.get(d_copy, size_t(n)).data(), src.data(), size_t(n) * 4), 0);
  }
}

TEST(CudaElementwise, AddIsOneRounding) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  Device dev(be);
  for (int64_t n : {1, 7, 1000003}) {
    const std::vector<float> a = random_floats(n, 51), b = random_floats(n, 52);
    float* da = dev.put(a);
    const float* db = dev.put(b);
    float* out = dev.alloc<float>(size_t(n));
    be.add(out, da, db, n);
    const std::vector<float> got = dev.get(out, size_t(n));
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[size_t(i)], a[size_t(i)] + b[size_t(i)]);
    be.add(da, da, db, n);  // out aliasing a
    EXPECT_TRUE(bitwise_equal(dev.get(da, size_t(n)), got));
  }
}

TEST(CudaElementwise, EmbeddingMatchesCpuBitForBit) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  CpuBackend cpu;
  Device dev(be);
  const int vocab = 50;
  for (int64_t N : {1, 7, 257, 4099})
    for (int C : {1, 36, 100, 300}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
      Rng rng(uint64_t(N * 31 + C), 3);
      std::vector<int32_t> tokens(static_cast<size_t>(N));
      for (auto& t : tokens) t = int32_t(rng.below(N > 100 ? 5 : vocab));  // many repeats
      const std::vector<float> table = random_floats(int64_t(vocab) * C, 12);
      const std::vector<float> dout = random_floats(N * C, 13);
      const std::vector<float> dtable0 = random_floats(int64_t(vocab) * C, 14);

      const int32_t* d_tokens = dev.put(tokens);
      float* d_out = dev.put(std::vector<float>(size_t(N * C), kNaN));
      be.embedding_forward(d_out, d_tokens, dev.put(table), N, C);
      Vec want;
      ref::embedding_forward(want, tokens, ref::to_double(table), C);
      EXPECT_EQ(ref::max_abs_error(dev.get(d_out, size_t(N * C)), want), 0.0)
          << "a gather is exact";

      // Backward (+=): the same fp32 additions in the same (token) order as the CPU.
      float* d_dtable = dev.put(dtable0);
      be.embedding_backward(d_dtable, d_tokens, dev.put(dout), N, C);
      std::vector<float> cpu_dtable = dtable0;
      cpu.embedding_backward(cpu_dtable.data(), tokens.data(), dout.data(), N, C);
      EXPECT_TRUE(bitwise_equal(dev.get(d_dtable, dtable0.size()), cpu_dtable));
    }
}

// ---------------------------------------------------------------------------------
// RMSNorm, RoPE, SwiGLU (vs the oracle; bf16 outputs vs the CPU's fp32 result)
// ---------------------------------------------------------------------------------

TEST(CudaElementwise, RmsNorm) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  CpuBackend cpu;
  Device dev(be);
  const float eps = 1e-5f;
  for (int64_t N : {1, 7, 257, 1031})
    for (int C : {1, 36, 100, 768, 4099}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
      const auto x = random_floats(N * C, 21, 2.0);
      const auto w = random_floats(C, 22);
      Vec want, want_rstd;
      ref::rmsnorm_forward(want, want_rstd, ref::to_double(x), ref::to_double(w), N, C, eps);
      const double depth = std::sqrt(double(C)) + 4;
      const float* dx_in = dev.put(x);
      const float* dw = dev.put(w);
      float* out = dev.put(std::vector<float>(size_t(N * C), kNaN));
      float* rstd = dev.put(std::vector<float>(size_t(N), kNaN));
      be.rmsnorm_forward(out, DType::f32, rstd, dx_in, dw, N, C, eps);
      const std::vector<float> got = dev.get(out, size_t(N * C));
      const std::vector<float> got_rstd = dev.get(rstd, size_t(N));
      expect_close(got, want, DType::f32, depth, "rmsnorm_forward out");
      expect_close(got_rstd, want_rstd, DType::f32, depth, "rmsnorm_forward rstd");
      uint16_t* out16 = dev.alloc<uint16_t>(size_t(N * C));
      be.rmsnorm_forward(out16, DType::bf16, rstd, dx_in, dw, N, C, eps);
      expect_bf16_within_ulp(dev.get(out16, size_t(N * C)), got, "rmsnorm_forward bf16");

      // Backward: both outputs accumulate.
      const auto dout = random_floats(N * C, 23);
      const auto dx0 = random_floats(N * C, 24);
      const auto dw0 = random_floats(C, 25);
      Vec want_dx = ref::to_double(dx0), want_dw = ref::to_double(dw0);
      ref::rmsnorm_backward(want_dx, want_dw, ref::to_double(dout), ref::to_double(x),
                            ref::to_double(w), ref::to_double(got_rstd), N, C);
      float* ddx = dev.put(dx0);
      float* ddw = dev.put(dw0);
      be.rmsnorm_backward(ddx, ddw, dev.put(dout), dx_in, dw, rstd, N, C);
      expect_close(dev.get(ddx, size_t(N * C)), want_dx, DType::f32, std::sqrt(double(C)) + 8,
                   "rmsnorm_backward dx");
      // dweight: fp32 sums over 32-row blocks, the blocks then added in double.
      const std::vector<float> got_dw = dev.get(ddw, size_t(C));
      expect_close(got_dw, want_dw, DType::f32, std::sqrt(32.0) + 8, "rmsnorm_backward dweight");
      // Deterministic: the same call again gives the same bits.
      dev.set(ddw, dw0);
      dev.set(ddx, dx0);
      be.rmsnorm_backward(ddx, ddw, dev.put(dout), dx_in, dw, rstd, N, C);
      EXPECT_TRUE(bitwise_equal(dev.get(ddw, size_t(C)), got_dw));
    }
}

TEST(CudaElementwise, RopeForwardBackward) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  Device dev(be);
  struct Shape {
    int B, T, H, Hkv, D, pos0;
    double theta;
  };
  for (const Shape& s : {Shape{1, 1, 1, 1, 2, 0, 10000.0}, Shape{2, 7, 4, 2, 6, 3, 10000.0},
                         Shape{3, 257, 4, 1, 64, 0, 1e6}, Shape{1, 33, 6, 6, 128, 100, 500000.0},
                         Shape{2, 5, 2, 1, 38, 1000, 10000.0}}) {
    SCOPED_TRACE("B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) +
                 " D=" + std::to_string(s.D));
    const int64_t n = int64_t(s.B) * s.T * (s.H + 2 * s.Hkv) * s.D;
    const auto qkv = random_floats(n, 41 + s.D);
    float* d = dev.put(qkv);
    be.rope_forward(d, s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
    const std::vector<float> got = dev.get(d, size_t(n));
    Vec want = ref::to_double(qkv);
    ref::rope_forward(want, s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
    expect_close(got, want, DType::f32, 4, "rope_forward");
    const int64_t row = int64_t(s.H + 2 * s.Hkv) * s.D;
    for (int64_t r = 0; r < int64_t(s.B) * s.T; ++r)
      for (int64_t j = int64_t(s.H + s.Hkv) * s.D; j < row; ++j)
        ASSERT_EQ(got[size_t(r * row + j)], qkv[size_t(r * row + j)]) << "v head changed";
    dev.set(d, qkv);
    be.rope_backward(d, s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
    Vec want_back = ref::to_double(qkv);
    ref::rope_backward(want_back, s.B, s.T, s.H, s.Hkv, s.D, s.theta, s.pos0);
    expect_close(dev.get(d, size_t(n)), want_back, DType::f32, 4, "rope_backward");
  }
  EXPECT_THROW(be.rope_forward(nullptr, 1, 1, 1, 1, 3, 1e4, 0), InputError) << "odd head_dim";
}

TEST(CudaElementwise, SwiGlu) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  Device dev(be);
  for (int64_t N : {1, 7, 257})
    for (int F : {1, 24, 172, 2051}) {
      SCOPED_TRACE("N=" + std::to_string(N) + " F=" + std::to_string(F));
      const auto h13 = random_floats(N * 2 * F, 31, 6.0);
      Vec want;
      ref::swiglu_forward(want, ref::to_double(h13), N, F);
      const float* d_h13 = dev.put(h13);
      float* out = dev.put(std::vector<float>(size_t(N * F), kNaN));
      be.swiglu_forward(out, DType::f32, d_h13, N, F);
      const std::vector<float> got = dev.get(out, size_t(N * F));
      expect_close(got, want, DType::f32, 8, "swiglu_forward");
      uint16_t* out16 = dev.alloc<uint16_t>(size_t(N * F));
      be.swiglu_forward(out16, DType::bf16, d_h13, N, F);
      expect_bf16_within_ulp(dev.get(out16, size_t(N * F)), got, "swiglu_forward bf16");
      const auto dout = random_floats(N * F, 32);
      float* dh13 = dev.put(std::vector<float>(size_t(N * 2 * F), kNaN));
      be.swiglu_backward(dh13, dev.put(dout), d_h13, N, F);
      Vec want_dh13;
      ref::swiglu_backward(want_dh13, ref::to_double(dout), ref::to_double(h13), N, F);
      expect_close(dev.get(dh13, size_t(N * 2 * F)), want_dh13, DType::f32, 12, "swiglu_backward");
    }
}

// ---------------------------------------------------------------------------------
// global norm, AdamW
// ---------------------------------------------------------------------------------

TEST(CudaOptimizer, GlobalNormIsDoubleAccurateAndDeterministic) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  Device dev(be);
  float* out = dev.alloc<float>(1);
  for (int64_t n : {0, 1, 7, 65536, 65537, 3000017}) {
    const auto g = random_floats(n, 51 + n);
    const float* d = dev.put(g);
    be.global_norm(out, d, n);
    const float got = dev.get(out, 1)[0];
    const double want = ref::global_norm(ref::to_double(g));
    if (n == 0) {
      EXPECT_EQ(got, 0.0f);
      continue;
    }
    EXPECT_LE(std::fabs(got - want) / want, ref::derived_tolerance(DType::f32, 1)) << "n " << n;
    be.global_norm(out, d, n);
    EXPECT_EQ(dev.get(out, 1)[0], got) << "deterministic";
  }
}

TEST(CudaOptimizer, AdamWMatchesOracle) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  Device dev(be);
  struct Case {
    float weight_decay, max_norm, grad_scale;
    DType compute;
  };
  for (const Case& c : {Case{0.0f, 0.0f, 1.0f, DType::f32}, Case{0.1f, 1.0f, 1.0f, DType::bf16},
                        Case{0.1f, 1e3f, 1e-3f, DType::f32}, Case{0.0f, 0.5f, 4.0f, DType::bf16}}) {
    for (int64_t n : {1, 1000, 300007}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " wd=" + std::to_string(c.weight_decay) +
                   " max_norm=" + std::to_string(c.max_norm));
      const auto p0 = random_floats(n, 61);
      float* p = dev.put(p0);
      float* m = dev.put(std::vector<float>(size_t(n), 0.0f));
      float* v = dev.put(std::vector<float>(size_t(n), 0.0f));
      void* copy = c.compute == DType::bf16 ? static_cast<void*>(dev.alloc<uint16_t>(size_t(n)))
                                            : static_cast<void*>(dev.alloc<float>(size_t(n)));
      float* norm = dev.alloc<float>(1);
      float* g_dev = dev.alloc<float>(size_t(n));
      Vec rp = ref::to_double(p0), rm(size_t(n), 0.0), rv(size_t(n), 0.0);
      AdamWHyper h;
      h.lr = 1e-2f;
      h.weight_decay = c.weight_decay;
      h.max_norm = c.max_norm;
      const int steps = 5;
      for (int step = 1; step <= steps; ++step) {
        h.step = step;
        const auto g = random_floats(n, 100 + step, c.grad_scale);
        dev.set(g_dev, g);
        be.global_norm(norm, g_dev, n);
        be.adamw(p, copy, c.compute, g_dev, m, v, n, h, norm);
        ref::AdamWHyperRef rh{h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, h.max_norm, h.step};
        ref::adamw(rp, ref::to_double(g), rm, rv, rh, ref::global_norm(ref::to_double(g)));
      }
      const double depth = 6.0 * steps;
      const std::vector<float> got_p = dev.get(p, size_t(n));
      expect_close(got_p, rp, DType::f32, depth, "adamw params");
      expect_close(dev.get(m, size_t(n)), rm, DType::f32, depth, "adamw m");
      expect_close(dev.get(v, size_t(n)), rv, DType::f32, depth, "adamw v");
      if (c.compute == DType::bf16) {
        const auto bits = dev.get(static_cast<uint16_t*>(copy), size_t(n));
        for (int64_t i = 0; i < n; ++i)
          ASSERT_EQ(bits[size_t(i)], float_to_bf16(got_p[size_t(i)]).bits) << "bf16 copy " << i;
      } else {
        EXPECT_TRUE(bitwise_equal(dev.get(static_cast<float*>(copy), size_t(n)), got_p));
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// attention
// ---------------------------------------------------------------------------------

struct AttnShape {
  int B, T, H, Hkv, D;
};

std::string attn_name(const AttnShape& s) {
  return "B" + std::to_string(s.B) + "_T" + std::to_string(s.T) + "_H" + std::to_string(s.H) +
         "_Hkv" + std::to_string(s.Hkv) + "_D" + std::to_string(s.D);
}

struct AttnResult {
  std::vector<float> out, lse, dqkv;
};

AttnResult run_attention(CudaBackend& be, const AttnShape& s, const std::vector<float>& qkv,
                         const std::vector<float>& dout) {
  Device dev(be);
  const size_t n_out = size_t(s.B) * s.T * s.H * s.D, n_lse = size_t(s.B) * s.H * s.T;
  const float* d_qkv = dev.put(qkv);
  float* out = dev.put(std::vector<float>(n_out, kNaN));  // NaN: an unwritten element fails
  float* lse = dev.put(std::vector<float>(n_lse, kNaN));
  float* dqkv = dev.put(std::vector<float>(qkv.size(), kNaN));
  be.attention_forward(out, lse, d_qkv, s.B, s.T, s.H, s.Hkv, s.D);
  be.attention_backward(dqkv, dev.put(dout), d_qkv, out, lse, s.B, s.T, s.H, s.Hkv, s.D);
  return {dev.get(out, n_out), dev.get(lse, n_lse), dev.get(dqkv, qkv.size())};
}

// Rounding depth as in test_ops_attention.cpp: a length-D dot per score, two length-T
// sums, a few single roundings; the backward chains a second pass of the same kind.
double attn_forward_depth(const AttnShape& s) {
  return std::sqrt(double(s.D)) + 2.0 * std::sqrt(double(s.T)) + 4.0;
}

class CudaAttention : public ::testing::TestWithParam<AttnShape> {};

// fp32 compute: the CUDA-core kernels, held to fp32 tolerances against the oracle.
TEST_P(CudaAttention, Fp32MatchesOracle) {
  REQUIRE_CUDA();
  const AttnShape s = GetParam();
  const int64_t n_qkv = int64_t(s.B) * s.T * (s.H + 2 * s.Hkv) * s.D;
  const auto qkv = random_floats(n_qkv, 7 + s.T, 2.0);
  const auto dout = random_floats(int64_t(s.B) * s.T * s.H * s.D, 8 + s.T);
  Vec out, lse, dqkv;
  ref::attention_forward(out, lse, ref::to_double(qkv), s.B, s.T, s.H, s.Hkv, s.D);
  ref::attention_backward(dqkv, ref::to_double(dout), ref::to_double(qkv), s.B, s.T, s.H, s.Hkv,
                          s.D);
  const AttnResult got = run_attention(gpu(DType::f32, CudaAttentionKernel::simt), s, qkv, dout);
  const double depth = attn_forward_depth(s);
  expect_close(got.out, out, DType::f32, depth, "attention out");
  expect_close(got.lse, lse, DType::f32, depth, "attention lse");
  expect_close(got.dqkv, dqkv, DType::f32, 2 * depth, "attention dqkv");
  // Bitwise reproducible: no atomics, fixed summation order.
  const AttnResult again = run_attention(gpu(DType::f32, CudaAttentionKernel::simt), s, qkv, dout);
  EXPECT_TRUE(bitwise_equal(again.out, got.out) && bitwise_equal(again.dqkv, got.dqkv));
}

// bf16 compute: the tensor-core kernels where head_dim is 64 or 128 (else the fp32
// ones). Tolerance: the bf16 roundings on the way (inputs, P, dS; 3 forward, 6
// backward), with safety factor 2.
TEST_P(CudaAttention, Bf16MatchesOracle) {
  REQUIRE_CUDA();
  const AttnShape s = GetParam();
  const int64_t n_qkv = int64_t(s.B) * s.T * (s.H + 2 * s.Hkv) * s.D;
  const auto qkv = random_floats(n_qkv, 7 + s.T, 2.0);
  const auto dout = random_floats(int64_t(s.B) * s.T * s.H * s.D, 8 + s.T);
  Vec out, lse, dqkv;
  ref::attention_forward(out, lse, ref::to_double(qkv), s.B, s.T, s.H, s.Hkv, s.D);
  ref::attention_backward(dqkv, ref::to_double(dout), ref::to_double(qkv), s.B, s.T, s.H, s.Hkv,
                          s.D);
  CudaBackend& be = gpu(DType::bf16);
  const AttnResult got = run_attention(be, s, qkv, dout);
  expect_close(got.out, out, DType::bf16, 3, "attention out", 2.0);
  expect_close(got.lse, lse, DType::bf16, 3, "attention lse", 2.0);
  expect_close(got.dqkv, dqkv, DType::bf16, 6, "attention dqkv", 2.0);
  const AttnResult again = run_attention(be, s, qkv, dout);
  EXPECT_TRUE(bitwise_equal(again.out, got.out) && bitwise_equal(again.dqkv, got.dqkv));
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaAttention,
                         ::testing::Values(AttnShape{1, 1, 1, 1, 4}, AttnShape{2, 7, 4, 2, 4},
                                           AttnShape{1, 33, 4, 4, 40}, AttnShape{2, 65, 4, 1, 64},
                                           AttnShape{1, 257, 8, 2, 64},
                                           AttnShape{2, 100, 2, 1, 128},
                                           AttnShape{1, 129, 4, 4, 128}, AttnShape{1, 64, 2, 2, 64},
                                           AttnShape{1, 70, 2, 1, 256}),
                         [](const auto& info) { return attn_name(info.param); });

// The tensor-core and CUDA-core kernels agree on the same inputs (bf16 tolerance).
TEST(CudaAttentionKernels, TensorCoresAgreeWithCudaCores) {
  REQUIRE_CUDA();
  for (const AttnShape& s : {AttnShape{2, 200, 6, 2, 64}, AttnShape{1, 191, 4, 1, 128}}) {
    SCOPED_TRACE(attn_name(s));
    const int64_t n_qkv = int64_t(s.B) * s.T * (s.H + 2 * s.Hkv) * s.D;
    const auto qkv = random_floats(n_qkv, 17, 2.0);
    const auto dout = random_floats(int64_t(s.B) * s.T * s.H * s.D, 18);
    const AttnResult mma = run_attention(gpu(DType::bf16, CudaAttentionKernel::mma), s, qkv, dout);
    const AttnResult simt =
        run_attention(gpu(DType::bf16, CudaAttentionKernel::simt), s, qkv, dout);
    expect_close(mma.out, ref::to_double(simt.out), DType::bf16, 3, "out", 2.0);
    expect_close(mma.dqkv, ref::to_double(simt.dqkv), DType::bf16, 6, "dqkv", 2.0);
  }
  EXPECT_THROW(run_attention(gpu(DType::bf16, CudaAttentionKernel::mma), AttnShape{1, 5, 1, 1, 40},
                             std::vector<float>(5 * 3 * 40), std::vector<float>(5 * 40)),
               InputError)
      << "the tensor-core kernels have no head_dim 40";
}

// ---------------------------------------------------------------------------------
// classifier + cross-entropy
// ---------------------------------------------------------------------------------

struct ChunkEnv {  // KILN_CE_CHUNK for one scope
  explicit ChunkEnv(int64_t rows) {
    if (rows > 0) setenv("KILN_CE_CHUNK", std::to_string(rows).c_str(), 1);
  }
  ~ChunkEnv() { unsetenv("KILN_CE_CHUNK"); }
};

void check_classifier(int64_t N, int C, int V, DType dtype, int64_t chunk, bool backward) {
  SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C) + " V=" + std::to_string(V) +
               " " + dtype_name(dtype) + " chunk=" + std::to_string(chunk));
  const uint64_t seed = uint64_t(N * 7919 + C * 31 + V);
  const auto x32 = random_floats(N * C, seed), w32 = random_floats(int64_t(V) * C, seed + 1);
  Vec x_held = ref::to_double(x32), w_held = ref::to_double(w32);
  if (dtype == DType::bf16) {
    x_held = ref::round_to_bf16(x_held);
    w_held = ref::round_to_bf16(w_held);
  }
  std::vector<int32_t> targets(static_cast<size_t>(N));
  Rng rng(seed, 11);
  int valid = 0;
  for (int64_t i = 0; i < N; ++i) {
    targets[size_t(i)] = (i % 5 == 3) ? -1 : int32_t(rng.below(uint64_t(V)));
    valid += targets[size_t(i)] >= 0;
  }
  const double dloss = 1.0 / std::max(valid, 1);
  const auto dW0 = random_floats(int64_t(V) * C, seed + 2, 0.1);

  CudaBackend& be = gpu(dtype);
  Device dev(be);
  const void* x =
      dtype == DType::f32 ? static_cast<const void*>(dev.put(x32)) : dev.put(to_bf16_bits(x32));
  const void* W =
      dtype == DType::f32 ? static_cast<const void*>(dev.put(w32)) : dev.put(to_bf16_bits(w32));
  float* losses = dev.put(std::vector<float>(size_t(N), kNaN));
  float* dx = dev.put(std::vector<float>(size_t(N) * C, kNaN));
  float* dW = dev.put(dW0);
  {
    ChunkEnv env(chunk);
    be.classifier_forward_backward(losses, backward ? dx : nullptr, backward ? dW : nullptr, x, W,
                                   dtype, dev.put(targets), N, C, V, float(dloss));
  }
  Vec want_losses, want_dx, want_dW = ref::to_double(dW0);
  ref::classifier_forward_backward(want_losses, backward ? &want_dx : nullptr,
                                   backward ? &want_dW : nullptr, x_held, w_held, targets, N, C, V,
                                   dloss);
  // Losses: fp32 logits of the held operands (a length-C dot), then a length-V sum and
  // a log: all fp32/double arithmetic, whatever the operand dtype.
  const std::vector<float> got_losses = dev.get(losses, size_t(N));
  expect_close(got_losses, want_losses, DType::f32, std::sqrt(double(C)) + std::sqrt(double(V)) + 8,
               "losses");
  for (int64_t i = 0; i < N; ++i) {
    if (targets[size_t(i)] < 0) {
      ASSERT_EQ(got_losses[size_t(i)], 0.0f) << "ignored row " << i;
    }
  }
  if (!backward) {
    EXPECT_TRUE(bitwise_equal(dev.get(dW, dW0.size()), dW0)) << "forward only leaves dW alone";
    return;
  }
  const std::vector<float> got_dx = dev.get(dx, size_t(N) * C);
  for (int64_t i = 0; i < N; ++i) {
    if (targets[size_t(i)] >= 0) continue;
    for (int c = 0; c < C; ++c) {
      ASSERT_EQ(got_dx[size_t(i * C + c)], 0.0f) << "ignored row " << i;
    }
  }
  // Gradients: with bf16 compute the dlogits are stored in bf16 (one rounding each)
  // before the two GEMMs; with fp32 compute two length-V / length-N fp32 sums.
  if (dtype == DType::bf16) {
    expect_close(got_dx, want_dx, DType::bf16, 1, "dx", 2.0);
    expect_close(dev.get(dW, dW0.size()), want_dW, DType::bf16, 1, "dW", 2.0);
  } else {
    expect_close(got_dx, want_dx, DType::f32, std::sqrt(double(V)) + std::sqrt(double(C)) + 12,
                 "dx");
    expect_close(dev.get(dW, dW0.size()), want_dW, DType::f32,
                 std::sqrt(double(N)) + std::sqrt(double(C)) + 12, "dW");
  }
}

TEST(CudaClassifier, ForwardBackwardMatchesOracle) {
  REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::bf16})
    for (int64_t N : {1, 7, 257})
      for (int V : {50, 517})
        for (int C : {36, 64}) {
          check_classifier(N, C, V, dtype, 0, true);
          check_classifier(N, C, V, dtype, 0, false);
        }
}

TEST(CudaClassifier, ChunkedMatchesOracle) {
  REQUIRE_CUDA();
  for (DType dtype : {DType::f32, DType::bf16})
    for (int64_t chunk : {1, 16, 100}) check_classifier(257, 64, 517, dtype, chunk, true);
  check_classifier(300, 96, 32000, DType::bf16, 0, true);  // a real vocabulary size
}

TEST(CudaClassifier, RejectsBadArguments) {
  REQUIRE_CUDA();
  CudaBackend& be = gpu();
  float dummy = 0;
  EXPECT_THROW(be.classifier_forward_backward(&dummy, &dummy, nullptr, &dummy, &dummy, DType::f32,
                                              nullptr, 1, 4, 4, 1.0f),
               InputError);
  EXPECT_THROW(be.classifier_forward_backward(&dummy, nullptr, nullptr, &dummy, &dummy, DType::f32,
                                              nullptr, 1, 0, 4, 1.0f),
               InputError);
}

// ---------------------------------------------------------------------------------
// the whole model step on the GPU
// ---------------------------------------------------------------------------------

struct GpuStep {
  float loss = 0;
  std::vector<float> grads;
};

GpuStep run_gpu_step(CudaBackend& be, const ModelConfig& config, const std::vector<float>& params,
                     const ref::TokenBatch& batch, const std::vector<int32_t>* compact = nullptr) {
  ModelStep step(be, config, batch.B, batch.T);
  if (compact) step.set_compact_vocab(*compact);
  const int64_t P = step.layout().total();
  Device dev(be);
  float* d_params = dev.put(params);
  void* d_compute = d_params;
  if (be.compute_dtype() == DType::bf16) {
    d_compute = dev.alloc<uint16_t>(size_t(P));
    be.cast(d_compute, DType::bf16, d_params, P);
  }
  float* d_grads = dev.put(std::vector<float>(size_t(P), 0.0f));
  GpuStep r;
  r.loss = step.forward_backward({d_params, d_compute}, d_grads, batch.tokens.data(),
                                 batch.targets.data());
  r.grads = dev.get(d_grads, size_t(P));
  return r;
}

// A config with head_dim 64, so bf16 compute runs the tensor-core attention.
ModelConfig head64_config() {
  ModelConfig c = ref::tiny_config(2, 1, true);
  c.name = "tiny-head64";
  c.dim = 128;
  c.head_dim = 64;
  c.hidden_dim = 96;
  c.vocab_size = 37;
  c.max_seq_len = 80;
  c.validate(c.name);
  return c;
}

struct ModelCase {
  ModelConfig config;
  int B, T;
};

void check_model_against_oracle(const ModelCase& mc, DType dtype, double loss_tol,
                                double grad_tol) {
  const ModelConfig& config = mc.config;
  SCOPED_TRACE(config.name + " H=" + std::to_string(config.n_heads) +
               " Hkv=" + std::to_string(config.n_kv_heads) + " B=" + std::to_string(mc.B) +
               " T=" + std::to_string(mc.T) + " " + dtype_name(dtype));
  const std::vector<float> params = ref::init_float_params(config, 11);
  const ref::RefModel model = ref::ref_model_from_float(config, params);
  const ref::TokenBatch batch = ref::random_batch(config, mc.B, mc.T, 5, 0.2);
  std::vector<double> want_grads;
  const double want_loss =
      ref::ref_loss_and_grads(model, batch.tokens, batch.targets, mc.B, mc.T, &want_grads);
  const GpuStep got = run_gpu_step(gpu(dtype), config, params, batch);
  EXPECT_LE(std::fabs(got.loss - want_loss) / std::fabs(want_loss), loss_tol)
      << "loss " << got.loss << " vs oracle " << want_loss;
  for (const auto& e : ref::per_tensor_errors(model.layout, got.grads, want_grads))
    EXPECT_LE(e.error, grad_tol) << e.name << " (|grad| = " << e.want_norm << ")";
}

std::vector<ModelCase> model_cases() {
  return {{ref::tiny_config(4, 2, false), 2, 7},
          {ref::tiny_config(4, 1, true), 1, 16},
          {ref::tiny_config(4, 4, false), 3, 1},
          {head64_config(), 2, 70}};
}

// fp32 compute (no TF32): as tight as the CPU fp32 path.
TEST(CudaModelStep, MatchesOracleFp32) {
  REQUIRE_CUDA();
  for (const ModelCase& mc : model_cases()) check_model_against_oracle(mc, DType::f32, 1e-5, 1e-4);
}

// bf16 GEMM operands, fp32 accumulation: <= 2e-2 relative (loss and every gradient tensor).
TEST(CudaModelStep, MatchesOracleBf16) {
  REQUIRE_CUDA();
  for (const ModelCase& mc : model_cases()) check_model_against_oracle(mc, DType::bf16, 2e-2, 2e-2);
}

// Vocabulary compaction runs the same ops on the GPU: compare with the CPU fp32 step.
TEST(CudaModelStep, CompactVocabularyMatchesCpu) {
  REQUIRE_CUDA();
  const ModelConfig config = ref::tiny_config(4, 2, false);
  const std::vector<float> params = ref::init_float_params(config, 13);
  const ref::TokenBatch batch = ref::random_batch(config, 2, 9, 17, 0.1);
  const std::vector<int32_t> used = {0, 2, 3, 5, 8, 10};
  const GpuStep got = run_gpu_step(gpu(DType::f32), config, params, batch, &used);
  CpuBackend cpu;
  ModelStep step(cpu, config, batch.B, batch.T);
  step.set_compact_vocab(used);
  std::vector<float> grads(size_t(step.layout().total()), 0.0f);
  const float want = step.forward_backward({params.data(), params.data()}, grads.data(),
                                           batch.tokens.data(), batch.targets.data());
  EXPECT_NEAR(got.loss, want, 1e-5 * std::fabs(want));
  for (const auto& e : ref::per_tensor_errors(step.layout(), got.grads, ref::to_double(grads)))
    EXPECT_LE(e.error, 1e-4) << e.name;
}

// ---------------------------------------------------------------------------------
// CUDA graphs
// ---------------------------------------------------------------------------------

// A miniature step (staged upload, norm, GEMM, grad norm, AdamW) run directly for two
// steps and through one captured graph replayed twice with new inputs and a new
// learning rate: the same results.
TEST(CudaGraph, ReplayMatchesDirectExecution) {
  REQUIRE_CUDA();
  CudaBackendOptions options;
  options.compute_dtype = DType::bf16;
  CudaBackend be(options);
  Device dev(be);
  const int N = 64, C = 96;
  const int64_t P = int64_t(C) * C;
  const auto x1 = random_floats(N * C, 1), x2 = random_floats(N * C, 2);
  const auto w = random_floats(C, 3), p0 = random_floats(P, 4);
  float* x = dev.alloc<float>(size_t(N * C));
  const float* norm_w = dev.put(w);
  uint16_t* xn = dev.alloc<uint16_t>(size_t(N * C));
  float* rstd = dev.alloc<float>(size_t(N));
  float* y = dev.alloc<float>(size_t(P));
  float* params = dev.alloc<float>(size_t(P));
  uint16_t* params16 = dev.alloc<uint16_t>(size_t(P));
  float* m = dev.alloc<float>(size_t(P));
  float* v = dev.alloc<float>(size_t(P));
  float* norm = dev.alloc<float>(1);
  auto reset = [&] {
    dev.set(params, p0);
    be.cast(params16, DType::bf16, params, P);
    be.zero(m, size_t(P) * 4);
    be.zero(v, size_t(P) * 4);
  };
  auto step = [&](const std::vector<float>& host_x, float lr, int64_t step_no) {
    be.upload(x, host_x.data(), host_x.size() * 4);
    be.rmsnorm_forward(xn, DType::bf16, rstd, x, norm_w, N, C, 1e-5f);
    // y[C, C] (=) xn^T xn / N-ish: a weight-gradient-shaped GEMM reading the bf16 copy too
    be.matmul(y, xn, xn, DType::bf16, C, C, N, true, false, false);
    be.matmul(y, params16, params16, DType::bf16, C, C, C, false, true, true);
    be.global_norm(norm, y, P);
    AdamWHyper h;
    h.lr = lr;
    h.step = step_no;
    h.max_norm = 1.0f;
    h.weight_decay = 0.1f;
    be.adamw(params, params16, DType::bf16, y, m, v, P, h, norm);
  };
  reset();
  step(x1, 1e-2f, 1);
  step(x2, 3e-3f, 2);
  const auto want_p = dev.get(params, size_t(P));
  const auto want_copy = dev.get(params16, size_t(P));
  const auto want_m = dev.get(m, size_t(P));

  reset();
  be.begin_capture();
  step(x1, 1e-2f, 1);
  be.end_capture();
  EXPECT_EQ(be.staged_input_count(), 1);
  EXPECT_GT(be.capture_seconds(), 0.0);
  be.replay();  // step 1 with the captured inputs
  be.set_staged_input(0, x2.data(), x2.size() * 4);
  be.set_optimizer_step(3e-3f, 2);
  be.replay();
  be.synchronize();
  expect_close(dev.get(params, size_t(P)), ref::to_double(want_p), DType::f32, 4, "params");
  expect_close(dev.get(m, size_t(P)), ref::to_double(want_m), DType::f32, 4, "m");
  const auto copy = dev.get(params16, size_t(P));
  for (int64_t i = 0; i < P; ++i)
    ASSERT_LE(bf16_ulp_distance(copy[size_t(i)], want_copy[size_t(i)]), 1) << i;
}

TEST(CudaGraph, RefusesWhatCannotBeCaptured) {
  REQUIRE_CUDA();
  CudaBackend be;
  Device dev(be);
  float* buf = dev.alloc<float>(4);
  float host[4] = {};
  EXPECT_THROW(be.replay(), RuntimeError) << "nothing captured yet";
  be.begin_capture();
  EXPECT_THROW(be.begin_capture(), RuntimeError);
  EXPECT_THROW(be.download(host, buf, sizeof(host)), RuntimeError);
  EXPECT_THROW(be.alloc(16), RuntimeError);
  EXPECT_THROW(be.synchronize(), RuntimeError);
  be.end_capture();
  EXPECT_FALSE(be.capturing());
  EXPECT_THROW(be.set_staged_input(0, host, sizeof(host)), InputError) << "no upload was recorded";
  be.replay();
  be.synchronize();
}

}  // namespace

#endif  // KILN_HAVE_CUDA
