// Kiln's CUDA kernels (flash attention on tensor cores and CUDA cores, RMSNorm,
// RoPE, SwiGLU, cast, add, embedding, cross-entropy rows, grad norm, AdamW) run on
// the CPU through tests/cuda_emulation.h and are checked against the fp64 oracle
// with the tolerances the GPU op harness uses (tests/test_cuda_ops.cpp). Grids are
// kept to a few blocks so every grid-stride and block-stride loop goes round. Also:
// the row-major -> column-major mapping handed to cuBLAS (gemm_layout.h). What this proves
// without a GPU: the index arithmetic, tiling, causal masks, GQA head mapping, online softmax,
// fragment layouts and shared memory use of the very kernel source the GPU runs. What it cannot:
// timing, real memory-model races (threads here are far more ordered than warps), compiler or
// hardware behaviour. Runs in every build, with or without CUDA.
#pragma GCC optimize("no-strict-aliasing")  // the kernels reinterpret shared memory

#include "cuda_emulation.h"
// (the emulation first, then the kernel sources)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda/attention_decode_kernels.cuh"
#include "backend/cuda/attention_mma_kernels.cuh"
#include "backend/cuda/attention_simt_kernels.cuh"
#include "backend/cuda/classifier_kernels.cuh"
#include "backend/cuda/elementwise_kernels.cuh"
#include "backend/cuda/embedding_kernels.cuh"
#include "backend/cuda/gemm_layout.h"
#include "backend/cuda/optimizer_kernels.cuh"
#include "backend/cuda/qwen_kernels.cuh"
#include "backend/cuda/rmsnorm_kernels.cuh"
#include "core/rng.h"
#include "reference/compare.h"
#include "reference/reference_ops.h"

using namespace kiln;
using ref::Vec;

namespace {

struct Shape {
  int B, T, H, Hkv, D;
  size_t qkv() const { return size_t(B) * T * (H + 2 * Hkv) * D; }
  size_t out() const { return size_t(B) * T * H * D; }
  size_t lse() const { return size_t(B) * H * T; }
};

std::string name_of(const Shape& s) {
  char text[96];
  std::snprintf(text, sizeof(text), "B%d T%d H%d Hkv%d D%d", s.B, s.T, s.H, s.Hkv, s.D);
  return text;
}

struct Result {
  std::vector<float> out, lse, dqkv;
};

struct Oracle {
  std::vector<float> qkv, dout;
  Vec out, lse, dqkv;
};

Oracle oracle(const Shape& s, uint64_t seed) {
  Oracle o;
  o.qkv = ref::to_float(ref::random_vector(int64_t(s.qkv()), seed, 2.0));
  o.dout = ref::to_float(ref::random_vector(int64_t(s.out()), seed + 1));
  ref::attention_forward(o.out, o.lse, ref::to_double(o.qkv), s.B, s.T, s.H, s.Hkv, s.D);
  ref::attention_backward(o.dqkv, ref::to_double(o.dout), ref::to_double(o.qkv), s.B, s.T, s.H,
                          s.Hkv, s.D);
  return o;
}

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Delta (shared by both paths), as attention_simt.cu launches it.
std::vector<float> run_delta(const Shape& s, const std::vector<float>& dout,
                             const std::vector<float>& out) {
  std::vector<float> delta(s.lse(), kNaN);
  const int64_t rows = int64_t(s.B) * s.T * s.H;
  emu::launch(unsigned((rows + 7) / 8), 256, 0, simt_attention::delta_kernel, delta.data(),
              dout.data(), out.data(), s.B, s.T, s.H, s.D);
  return delta;
}

template <int D>
Result run_mma(const Shape& s, const Oracle& o) {
  using namespace mma_attention;
  Result r{std::vector<float>(s.out(), kNaN), std::vector<float>(s.lse(), kNaN),
           std::vector<float>(s.qkv(), kNaN)};
  const int n_blocks = (s.T + kTile - 1) / kTile;
  emu::launch(unsigned(n_blocks * s.B * s.H), kThreads, forward_smem_bytes<D>(),
              mma_forward_kernel<D>, r.out.data(), r.lse.data(), o.qkv.data(), s.B, s.T, s.H, s.Hkv,
              n_blocks);
  const std::vector<float> delta = run_delta(s, o.dout, r.out);
  emu::launch(unsigned(n_blocks * s.B * s.Hkv), kThreads, dkdv_smem_bytes<D>(), mma_dkdv_kernel<D>,
              r.dqkv.data(), o.dout.data(), o.qkv.data(), r.lse.data(), delta.data(), s.B, s.T, s.H,
              s.Hkv);
  emu::launch(unsigned(n_blocks * s.B * s.H), kThreads, dq_smem_bytes<D>(), mma_dq_kernel<D>,
              r.dqkv.data(), o.dout.data(), o.qkv.data(), r.lse.data(), delta.data(), s.B, s.T, s.H,
              s.Hkv, n_blocks);
  return r;
}

template <int DPL>
Result run_simt(const Shape& s, const Oracle& o) {
  using namespace simt_attention;
  Result r{std::vector<float>(s.out(), kNaN), std::vector<float>(s.lse(), kNaN),
           std::vector<float>(s.qkv(), kNaN)};
  const int n_blocks = (s.T + kTile - 1) / kTile;
  emu::launch(unsigned(n_blocks * s.B * s.H), kThreads, size_t(forward_smem_floats(s.D)) * 4,
              simt_forward_kernel<DPL>, r.out.data(), r.lse.data(), o.qkv.data(), s.B, s.T, s.H,
              s.Hkv, s.D, n_blocks);
  const std::vector<float> delta = run_delta(s, o.dout, r.out);
  const size_t smem = size_t(backward_smem_floats(s.D)) * 4;
  emu::launch(unsigned(n_blocks * s.B * s.Hkv), kThreads, smem, simt_dkdv_kernel<DPL>,
              r.dqkv.data(), o.dout.data(), o.qkv.data(), r.lse.data(), delta.data(), s.B, s.T, s.H,
              s.Hkv, s.D);
  emu::launch(unsigned(n_blocks * s.B * s.H), kThreads, smem, simt_dq_kernel<DPL>, r.dqkv.data(),
              o.dout.data(), o.qkv.data(), r.lse.data(), delta.data(), s.B, s.T, s.H, s.Hkv, s.D,
              n_blocks);
  return r;
}

void expect_close(const std::vector<float>& got, const Vec& want, DType dtype, double depth,
                  double k, const std::string& what) {
  EXPECT_LE(ref::normalized_error(got, want), ref::derived_tolerance(dtype, depth, k))
      << what << " (" << dtype_name(dtype) << ", depth " << depth << ", k " << k << ")";
}

// As test_ops_attention.cpp: a length-D dot per score, two length-T sums, a few roundings.
double forward_depth(const Shape& s) {
  return std::sqrt(double(s.D)) + 2.0 * std::sqrt(double(s.T)) + 4.0;
}

}  // namespace

// bf16 tensor-core kernels: the bf16 roundings on the way (3 forward, 6 backward), k = 2.
TEST(CudaKernelsEmulated, TensorCoreAttentionMatchesOracle) {
  for (const Shape& s : {Shape{1, 70, 2, 1, 64}, Shape{2, 33, 4, 2, 64}, Shape{1, 128, 1, 1, 64},
                         Shape{1, 65, 2, 2, 128}, Shape{1, 1, 2, 1, 64}}) {
    SCOPED_TRACE(name_of(s));
    const Oracle o = oracle(s, 100 + s.T);
    const Result r = s.D == 64 ? run_mma<64>(s, o) : run_mma<128>(s, o);
    expect_close(r.out, o.out, DType::bf16, 3, 2.0, "out");
    expect_close(r.lse, o.lse, DType::bf16, 3, 2.0, "lse");
    expect_close(r.dqkv, o.dqkv, DType::bf16, 6, 2.0, "dqkv");
  }
}

// fp32 CUDA-core kernels: fp32 tolerances, every dims-per-lane bucket.
TEST(CudaKernelsEmulated, Fp32AttentionMatchesOracle) {
  for (const Shape& s : {Shape{2, 9, 2, 2, 4}, Shape{1, 37, 3, 1, 40}, Shape{1, 70, 2, 1, 64},
                         Shape{1, 33, 2, 1, 128}, Shape{1, 20, 1, 1, 256}, Shape{1, 1, 1, 1, 6}}) {
    SCOPED_TRACE(name_of(s));
    const Oracle o = oracle(s, 200 + s.T);
    Result r;
    if (s.D <= 32)
      r = run_simt<1>(s, o);
    else if (s.D <= 64)
      r = run_simt<2>(s, o);
    else if (s.D <= 128)
      r = run_simt<4>(s, o);
    else
      r = run_simt<8>(s, o);
    const double depth = forward_depth(s);
    expect_close(r.out, o.out, DType::f32, depth, 8.0, "out");
    expect_close(r.lse, o.lse, DType::f32, depth, 8.0, "lse");
    expect_close(r.dqkv, o.dqkv, DType::f32, 2 * depth, 8.0, "dqkv");
  }
}

// ---------------------------------------------------------------------------------
// The other kernels, launched as their .cu files launch them but on a grid of a few
// blocks (the backend's grid_for caps blocks at 32 per SM and strides beyond).
// ---------------------------------------------------------------------------------

namespace {

std::vector<float> random_floats(int64_t n, uint64_t seed, double scale = 1.0) {
  return ref::to_float(ref::random_vector(n, seed, scale));
}

std::vector<float> bits_to_floats(const std::vector<uint16_t>& bits) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) out[i] = bf16_to_float(bf16{bits[i]});
  return out;
}

// Each element of a bf16 result within one bf16 ulp of the correctly rounded value.
void expect_bf16_near(const std::vector<uint16_t>& got, const Vec& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const uint16_t w = float_to_bf16(float(want[i])).bits;
    auto ordered = [](uint16_t x) { return (x & 0x8000) ? -int(x & 0x7fff) : int(x); };
    ASSERT_LE(std::abs(ordered(got[i]) - ordered(w)), 1) << what << " element " << i;
  }
}

}  // namespace

TEST(CudaKernelsEmulated, CastAddEmbeddingForward) {
  using namespace elementwise_kernels;
  const int64_t n = 1001;
  std::vector<float> src = random_floats(n, 1, 3.0);
  const uint32_t specials[] = {0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u,
                               0x00000001u, 0x3f808000u, 0x3f818000u, 0x7f7fffffu};
  for (size_t i = 0; i < std::size(specials); ++i) std::memcpy(&src[i * 97], &specials[i], 4);
  std::vector<uint16_t> dst(size_t(n) + 1, 0xabcd);
  emu::launch(3, 64, 0, cast_bf16_kernel, dst.data(), static_cast<const float*>(src.data()), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(dst[size_t(i)], float_to_bf16(src[size_t(i)]).bits) << i;
  EXPECT_EQ(dst[size_t(n)], 0xabcd);

  std::vector<float> a = random_floats(n, 2), b = random_floats(n, 3), out(size_t(n), kNaN);
  emu::launch(3, 64, 0, add_kernel, out.data(), static_cast<const float*>(a.data()),
              static_cast<const float*>(b.data()), n);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(out[size_t(i)], a[size_t(i)] + b[size_t(i)]);

  const int C = 37, vocab = 9, N = 11;
  const std::vector<float> table = random_floats(vocab * C, 4);
  std::vector<int32_t> tokens = {0, 8, 3, 3, -1, 5, 0, 7, 2, 8, 1};
  std::vector<float> rows(size_t(N) * C, 0.0f);
  emu::launch(2, 64, 0, embedding_forward_kernel, rows.data(),
              static_cast<const int32_t*>(tokens.data()), table.data(), int64_t(N), C);
  for (int i = 0; i < N; ++i)
    for (int c = 0; c < C; ++c) {
      const float got = rows[size_t(i) * C + c];
      if (tokens[size_t(i)] < 0)
        ASSERT_TRUE(std::isnan(got)) << "a negative id must give a NaN row";
      else
        ASSERT_EQ(got, table[size_t(tokens[size_t(i)]) * C + c]);
    }
}

TEST(CudaKernelsEmulated, RopeAndSwiGlu) {
  using namespace elementwise_kernels;
  // RoPE with the table CudaBackend::rope_table builds (double angles, fp32 cos/sin).
  const int B = 2, T = 7, H = 4, Hkv = 2, D = 6, pos0 = 3;
  const double theta = 10000.0;
  const int half = D / 2, positions = 64;
  std::vector<float> cos_t(size_t(positions) * half), sin_t(size_t(positions) * half);
  for (int p = 0; p < positions; ++p)
    for (int i = 0; i < half; ++i) {
      const double angle = double(p) * std::pow(theta, -2.0 * i / D);
      cos_t[size_t(p) * half + i] = float(std::cos(angle));
      sin_t[size_t(p) * half + i] = float(std::sin(angle));
    }
  const int64_t rows = int64_t(B) * T, stride = int64_t(H + 2 * Hkv) * D;
  const std::vector<float> qkv = random_floats(rows * stride, 5);
  for (float sign : {1.0f, -1.0f}) {
    std::vector<float> got = qkv;
    emu::launch(3, 32, 0, rope_kernel, got.data(), rows, T, stride, H + Hkv, D,
                static_cast<const float*>(cos_t.data()), static_cast<const float*>(sin_t.data()),
                pos0, static_cast<const int32_t*>(nullptr), sign);
    Vec want = ref::to_double(qkv);
    if (sign > 0)
      ref::rope_forward(want, B, T, H, Hkv, D, theta, pos0);
    else
      ref::rope_backward(want, B, T, H, Hkv, D, theta, pos0);
    expect_close(got, want, DType::f32, 4, 8.0, sign > 0 ? "rope forward" : "rope backward");
  }

  const int64_t N = 9;
  const int F = 45;
  const std::vector<float> h13 = random_floats(N * 2 * F, 6, 6.0);
  Vec want;
  ref::swiglu_forward(want, ref::to_double(h13), N, F);
  std::vector<float> out(size_t(N * F), kNaN);
  emu::launch(2, 64, 0, swiglu_forward_kernel, static_cast<void*>(out.data()), false,
              static_cast<const float*>(h13.data()), N, F);
  expect_close(out, want, DType::f32, 8, 8.0, "swiglu forward");
  std::vector<uint16_t> out16(size_t(N * F), 0xffff);
  emu::launch(2, 64, 0, swiglu_forward_kernel, static_cast<void*>(out16.data()), true,
              static_cast<const float*>(h13.data()), N, F);
  expect_bf16_near(out16, want, "swiglu forward bf16");
  const std::vector<float> dout = random_floats(N * F, 7);
  std::vector<float> dh13(size_t(N * 2 * F), kNaN);
  emu::launch(2, 64, 0, swiglu_backward_kernel, dh13.data(), static_cast<const float*>(dout.data()),
              static_cast<const float*>(h13.data()), N, F);
  Vec want_d;
  ref::swiglu_backward(want_d, ref::to_double(dout), ref::to_double(h13), N, F);
  expect_close(dh13, want_d, DType::f32, 12, 8.0, "swiglu backward");
}

TEST(CudaKernelsEmulated, RmsNorm) {
  using namespace rmsnorm_kernels;
  const float eps = 1e-5f;
  for (auto [N, C] : {std::pair<int64_t, int>{37, 100}, {65, 33}, {1, 1}}) {
    SCOPED_TRACE("N=" + std::to_string(N) + " C=" + std::to_string(C));
    const std::vector<float> x = random_floats(N * C, 21, 2.0), w = random_floats(C, 22);
    Vec want, want_rstd;
    ref::rmsnorm_forward(want, want_rstd, ref::to_double(x), ref::to_double(w), N, C, eps);
    std::vector<float> out(size_t(N) * C, kNaN), rstd(size_t(N), kNaN);
    emu::launch(2, kForwardThreads, 0, rmsnorm_forward_kernel, static_cast<void*>(out.data()),
                false, rstd.data(), static_cast<const float*>(x.data()),
                static_cast<const float*>(w.data()), N, C, eps);
    const double depth = std::sqrt(double(C)) + 4;
    expect_close(out, want, DType::f32, depth, 8.0, "rmsnorm out");
    expect_close(rstd, want_rstd, DType::f32, depth, 8.0, "rmsnorm rstd");

    const std::vector<float> dout = random_floats(N * C, 23), dx0 = random_floats(N * C, 24),
                             dw0 = random_floats(C, 25);
    Vec want_dx = ref::to_double(dx0), want_dw = ref::to_double(dw0);
    ref::rmsnorm_backward(want_dx, want_dw, ref::to_double(dout), ref::to_double(x),
                          ref::to_double(w), ref::to_double(rstd), N, C);
    std::vector<float> dx = dx0, dw = dw0;
    const int64_t n_blocks = (N + kRowsPerBlock - 1) / kRowsPerBlock;
    std::vector<float> partials(size_t(n_blocks) * C, kNaN);
    emu::launch(2, kBackwardThreads, 0, rmsnorm_backward_kernel, dx.data(), partials.data(),
                static_cast<const float*>(dout.data()), static_cast<const float*>(x.data()),
                static_cast<const float*>(w.data()), static_cast<const float*>(rstd.data()), N, C,
                n_blocks);
    emu::launch(unsigned((C + kWarp - 1) / kWarp),
                emu::Dim3{unsigned(kWarp), unsigned(kSumGroups), 1}, 0, rmsnorm_dweight_kernel,
                dw.data(), static_cast<const float*>(partials.data()), n_blocks, C);
    expect_close(dx, want_dx, DType::f32, std::sqrt(double(C)) + 8, 8.0, "rmsnorm dx");
    expect_close(dw, want_dw, DType::f32, std::sqrt(32.0) + 8, 8.0, "rmsnorm dweight");
  }
}

TEST(CudaKernelsEmulated, QwenBiasAndHeadRmsNorm) {
  using namespace qwen_kernels;
  const int64_t N = 13;
  const int H = 7, Hkv = 1, D = 6, W = (H + 2 * Hkv) * D;
  const std::vector<float> y0 = random_floats(N * W, 41), b = random_floats(W, 42);
  std::vector<float> y = y0;
  emu::launch(3, 64, 0, bias_forward_kernel, y.data(), static_cast<const float*>(b.data()), N, W);
  Vec want = ref::to_double(y0);
  ref::bias_forward(want, ref::to_double(b), N, W);
  expect_close(y, want, DType::f32, 1, 8.0, "bias forward");
  const std::vector<float> dy = random_floats(N * W, 43), db0 = random_floats(W, 44);
  std::vector<float> db = db0;
  emu::launch(2, 32, 0, bias_backward_kernel, db.data(), static_cast<const float*>(dy.data()), N,
              W);
  Vec want_db = ref::to_double(db0);
  ref::bias_backward(want_db, ref::to_double(dy), N, W);
  expect_close(db, want_db, DType::f32, double(N) + 1, 8.0, "bias backward");

  const float eps = 1e-6f;
  const std::vector<float> x = random_floats(N * W, 45, 2.0), qw = random_floats(D, 46),
                           kw = random_floats(D, 47);
  std::vector<float> out(size_t(N * W), kNaN), rstd(size_t(N * (H + Hkv)), kNaN);
  emu::launch(3, 32, 0, head_rmsnorm_forward_kernel, out.data(), rstd.data(),
              static_cast<const float*>(x.data()), static_cast<const float*>(qw.data()),
              static_cast<const float*>(kw.data()), N, H, Hkv, D, eps);
  Vec want_out, want_rstd;
  ref::head_rmsnorm_forward(want_out, want_rstd, ref::to_double(x), ref::to_double(qw),
                            ref::to_double(kw), N, H, Hkv, D, eps);
  expect_close(out, want_out, DType::f32, std::sqrt(double(D)) + 4, 8.0, "head rmsnorm out");
  expect_close(rstd, want_rstd, DType::f32, std::sqrt(double(D)) + 4, 8.0, "head rmsnorm rstd");

  const std::vector<float> g0 = random_floats(N * W, 48), dqw0 = random_floats(D, 49),
                           dkw0 = random_floats(D, 50);
  std::vector<float> g = g0, dqw = dqw0, dkw = dkw0;
  emu::launch(1, 32, 0, head_rmsnorm_dweight_kernel, dqw.data(), dkw.data(),
              static_cast<const float*>(g.data()), static_cast<const float*>(x.data()),
              static_cast<const float*>(rstd.data()), N, H, Hkv, D);
  emu::launch(2, 32, 0, head_rmsnorm_dx_kernel, g.data(), static_cast<const float*>(x.data()),
              static_cast<const float*>(qw.data()), static_cast<const float*>(kw.data()),
              static_cast<const float*>(rstd.data()), N, H, Hkv, D);
  Vec want_g = ref::to_double(g0), want_dqw = ref::to_double(dqw0), want_dkw = ref::to_double(dkw0);
  ref::head_rmsnorm_backward(want_g, want_dqw, want_dkw, ref::to_double(x), ref::to_double(qw),
                             ref::to_double(kw), ref::to_double(rstd), N, H, Hkv, D);
  expect_close(g, want_g, DType::f32, std::sqrt(double(D)) + 8, 8.0, "head rmsnorm dx");
  expect_close(dqw, want_dqw, DType::f32, double(N * H) + 8, 8.0, "head rmsnorm dq_weight");
  expect_close(dkw, want_dkw, DType::f32, double(N * Hkv) + 8, 8.0, "head rmsnorm dk_weight");
}

TEST(CudaKernelsEmulated, GlobalNormAndAdamW) {
  using namespace optimizer_kernels;
  const int64_t n = 150001;  // three norm chunks, the last partial
  const int64_t n_chunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> partials(size_t(n_chunks), NAN);
  float norm = kNaN;
  const float max_norm = 50.0f;
  const std::vector<float> p0 = random_floats(n, 61);
  for (bool dynamic : {false, true}) {
    SCOPED_TRACE(dynamic ? "step values from device memory (graph replay)" : "by value");
    std::vector<float> p = p0, m(size_t(n), 0.0f), v(size_t(n), 0.0f);
    std::vector<uint16_t> copy(size_t(n), 0);
    Vec rp = ref::to_double(p0), rm(size_t(n), 0.0), rv(size_t(n), 0.0);
    for (int step = 1; step <= 3; ++step) {
      const std::vector<float> g = random_floats(n, 100 + step, 0.5);
      emu::launch(2, kNormThreads, 0, sum_squares_chunks_kernel, partials.data(),
                  static_cast<const float*>(g.data()), n, n_chunks);
      emu::launch(1, 1024, 0, norm_finish_kernel, &norm,
                  static_cast<const double*>(partials.data()), n_chunks);
      const double want_norm = ref::global_norm(ref::to_double(g));
      ASSERT_LE(std::fabs(norm - want_norm) / want_norm, ref::derived_tolerance(DType::f32, 1));
      // The scalars as CudaBackend::adamw forms them.
      const double lr = 1e-2, beta1 = 0.9, beta2 = 0.95;
      AdamWArgs a{0.9f, 0.95f, 1e-8f, 0.1f, max_norm, 0, 0, 0};
      a.decay_factor = float(1.0 - lr * double(a.weight_decay));
      a.step_size = float(lr / (1.0 - std::pow(beta1, step)));
      a.bias_correction2_sqrt = float(std::sqrt(1.0 - std::pow(beta2, step)));
      DynamicStep device_step{lr, step};
      if (dynamic) a.decay_factor = a.step_size = a.bias_correction2_sqrt = kNaN;  // must be unused
      emu::launch(3, kAdamThreads, 0, adamw_kernel<Copy::bf16>, p.data(),
                  static_cast<void*>(copy.data()), static_cast<const float*>(g.data()), m.data(),
                  v.data(), n, a, static_cast<const float*>(&norm),
                  dynamic ? static_cast<const DynamicStep*>(&device_step) : nullptr);
      ref::AdamWHyperRef rh{lr, beta1, beta2, 1e-8, 0.1, double(max_norm), step};
      ref::adamw(rp, ref::to_double(g), rm, rv, rh, want_norm);
    }
    expect_close(p, rp, DType::f32, 18, 8.0, "adamw params");
    expect_close(m, rm, DType::f32, 18, 8.0, "adamw m");
    expect_close(v, rv, DType::f32, 18, 8.0, "adamw v");
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(copy[size_t(i)], float_to_bf16(p[size_t(i)]).bits);
  }
}

TEST(CudaKernelsEmulated, CrossEntropyRows) {
  using namespace classifier_kernels;
  const int64_t rows = 5;
  const int V = 517;
  const float dloss = 0.25f;
  const std::vector<int32_t> targets = {3, -1, 516, 0, 200};
  const std::vector<float> logits = random_floats(rows * V, 31, 6.0);
  // The oracle: loss = logsumexp - logit[target], dlogits = (softmax - onehot) * dloss.
  Vec want_loss(static_cast<size_t>(rows)), want_d(static_cast<size_t>(rows) * V, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const int t = targets[size_t(r)];
    if (t < 0) continue;
    double mx = -INFINITY, sum = 0;
    for (int j = 0; j < V; ++j) mx = std::max(mx, double(logits[size_t(r * V + j)]));
    for (int j = 0; j < V; ++j) sum += std::exp(double(logits[size_t(r * V + j)]) - mx);
    want_loss[size_t(r)] = mx + std::log(sum) - logits[size_t(r * V + t)];
    for (int j = 0; j < V; ++j)
      want_d[size_t(r * V + j)] =
          (std::exp(double(logits[size_t(r * V + j)]) - mx) / sum - (j == t)) * dloss;
  }
  for (bool bf16_out : {false, true}) {
    SCOPED_TRACE(bf16_out ? "bf16 dlogits" : "fp32 dlogits in place");
    std::vector<float> work = logits, losses(size_t(rows), kNaN);
    std::vector<uint16_t> d16(size_t(rows) * V, 0xffff);
    void* dlogits = bf16_out ? static_cast<void*>(d16.data()) : static_cast<void*>(work.data());
    emu::launch(2, 512, 0, cross_entropy_rows_kernel, losses.data(), work.data(), dlogits, bf16_out,
                true, static_cast<const int32_t*>(targets.data()), rows, V, dloss);
    expect_close(losses, want_loss, DType::f32, std::sqrt(double(V)) + 8, 8.0, "losses");
    EXPECT_EQ(losses[1], 0.0f) << "no target: loss 0";
    if (bf16_out)
      expect_bf16_near(d16, want_d, "dlogits");
    else
      expect_close(work, want_d, DType::f32, 8, 8.0, "dlogits");
    const std::vector<float> d = bf16_out ? bits_to_floats(d16) : work;
    for (int j = 0; j < V; ++j) ASSERT_EQ(d[size_t(V + j)], 0.0f) << "no target: no gradient";
  }
}

// The run kernel after a stable sort (CUB's on the GPU, std::stable_sort here): the CPU
// backend's sums, bit for bit.
TEST(CudaKernelsEmulated, EmbeddingBackwardRuns) {
  using namespace embedding_kernels;
  const int64_t N = 300;
  const int C = 70, vocab = 7;
  Rng rng(3, 3);
  std::vector<int32_t> tokens(static_cast<size_t>(N));
  for (auto& t : tokens) t = int32_t(rng.below(vocab));
  const std::vector<float> dout = random_floats(N * C, 41), dtable0 = random_floats(vocab * C, 42);
  std::vector<int32_t> order(static_cast<size_t>(N));
  emu::launch(2, 64, 0, iota_kernel, order.data(), N);
  for (int64_t i = 0; i < N; ++i) ASSERT_EQ(order[size_t(i)], i);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return tokens[size_t(a)] < tokens[size_t(b)]; });
  std::vector<int32_t> sorted(static_cast<size_t>(N));
  for (int64_t i = 0; i < N; ++i) sorted[size_t(i)] = tokens[size_t(order[size_t(i)])];
  std::vector<float> got = dtable0;
  emu::launch(3, 96, 0, embedding_backward_runs_kernel, got.data(),
              static_cast<const int32_t*>(sorted.data()), static_cast<const int32_t*>(order.data()),
              static_cast<const float*>(dout.data()), N, C);
  std::vector<float> want = dtable0;
  CpuBackend cpu;
  cpu.embedding_backward(want.data(), tokens.data(), dout.data(), N, C);
  EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * 4), 0);
}

// The operands and dimensions gemm_cublaslt.cpp hands to cuBLAS, evaluated with
// cuBLAS's column-major semantics written out in loops, give Kiln's row-major product.
TEST(CudaKernelsEmulated, CublasLayoutMapping) {
  for (auto [M, N, K] :
       {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {3, 5, 7}, {7, 2, 1}, {4, 9, 6}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE("M=" + std::to_string(M) + " N=" + std::to_string(N) +
                     " K=" + std::to_string(K) + (ta ? " At" : "") + (tb ? " Bt" : ""));
        const Vec A = ref::random_vector(M * K, 1), B = ref::random_vector(K * N, 2);
        Vec want;
        ref::matmul(want, A, B, M, N, K, ta, tb, false);
        const ColumnMajorGemm g = column_major_gemm(M, N, K, ta, tb);
        // op(X) is m x k (first) / k x n (second): the stored shape must agree.
        auto check_shape = [](const ColumnMajorOperand& x, int64_t op_rows, int64_t op_cols) {
          EXPECT_EQ(x.transpose ? x.cols : x.rows, op_rows);
          EXPECT_EQ(x.transpose ? x.rows : x.cols, op_cols);
          EXPECT_GE(x.ld, x.rows);
        };
        check_shape(g.first, g.m, g.k);
        check_shape(g.second, g.k, g.n);
        auto at = [](const Vec& x, const ColumnMajorOperand& o, int64_t i, int64_t j) {
          return o.transpose ? x[size_t(j + i * o.ld)] : x[size_t(i + j * o.ld)];
        };
        Vec C(size_t(M * N), NAN);
        for (int64_t i = 0; i < g.m; ++i)
          for (int64_t j = 0; j < g.n; ++j) {
            double sum = 0;
            for (int64_t p = 0; p < g.k; ++p) sum += at(B, g.first, i, p) * at(A, g.second, p, j);
            C[size_t(i + j * g.ldc)] = sum;
          }
        for (size_t i = 0; i < C.size(); ++i) ASSERT_NEAR(C[i], want[i], 1e-12) << i;
      }
}

namespace kiln {
namespace {

// The KV-cache decode kernels (attention_decode.cu) as the backend launches them:
// the append, then one warp per (token, query head), four warps per block, against
// the fp64 oracle; and RoPE at per-sequence positions read from (device) memory.
TEST(CudaKernelsEmulated, AttentionDecodeAndRopeAtPositions) {
  using namespace decode_kernels;
  for (const auto& [T, D, ratio] : std::vector<std::tuple<int, int, int>>{
           {1, 64, 1}, {1, 40, 2}, {3, 8, 4}, {3, 128, 2}}) {
    const int B = 2, Hkv = 2, H = Hkv * ratio, max_len = 24;
    const std::vector<int32_t> pos = {7, max_len - T};
    const int64_t row = int64_t(H + 2 * Hkv) * D, cache = int64_t(B) * max_len * Hkv * D;
    std::vector<float> k_got = ref::to_float(ref::random_vector(cache, 91, 1.0));
    std::vector<float> v_got = ref::to_float(ref::random_vector(cache, 92, 1.0));
    const std::vector<float> qkv = ref::to_float(ref::random_vector(B * T * row, 93, 2.0));
    ref::Vec k_want = ref::to_double(k_got), v_want = ref::to_double(v_got), out_want;
    ref::attention_decode(out_want, k_want, v_want, ref::to_double(qkv), B, T, H, Hkv, D, pos,
                          max_len);
    emu::launch(3, 64, 0, kv_append_kernel, k_got.data(), v_got.data(),
                static_cast<const float*>(qkv.data()), B, T, H, Hkv, D,
                static_cast<const int32_t*>(pos.data()), max_len);
    EXPECT_EQ(ref::to_double(k_got), k_want);
    EXPECT_EQ(ref::to_double(v_got), v_want);
    std::vector<float> out(size_t(B) * T * H * D, kNaN);
    const unsigned blocks = unsigned((B * T * H + kWarpsPerBlock - 1) / kWarpsPerBlock);
    emu::launch(blocks, 32 * kWarpsPerBlock, 0, decode_attention_kernel, out.data(),
                static_cast<const float*>(k_got.data()), static_cast<const float*>(v_got.data()),
                static_cast<const float*>(qkv.data()), B, T, H, Hkv, D,
                static_cast<const int32_t*>(pos.data()), max_len,
                float(1.0 / std::sqrt(double(D))));
    const double depth = std::sqrt(double(D)) + 2.0 * std::sqrt(double(max_len)) + 4.0;
    EXPECT_LE(ref::normalized_error(out, out_want), ref::derived_tolerance(DType::f32, depth))
        << "T " << T << " D " << D << " gqa " << ratio;
  }

  using namespace elementwise_kernels;
  const int B = 3, T = 2, H = 2, Hkv = 1, D = 8, half = D / 2, positions = 64;
  const RopeParams rope(10000.0);
  std::vector<float> cos_t(size_t(positions) * half), sin_t(size_t(positions) * half);
  for (int p = 0; p < positions; ++p)
    for (int i = 0; i < half; ++i) {
      const double angle = double(p) * rope.inv_freq(i, D);
      cos_t[size_t(p) * half + i] = float(std::cos(angle));
      sin_t[size_t(p) * half + i] = float(std::sin(angle));
    }
  const std::vector<int32_t> pos = {0, 5, 61};
  const int64_t row = int64_t(H + 2 * Hkv) * D;
  const std::vector<float> qkv = ref::to_float(ref::random_vector(B * T * row, 94, 1.0));
  std::vector<float> got = qkv;
  emu::launch(2, 32, 0, rope_kernel, got.data(), int64_t(B) * T, T, row, H + Hkv, D,
              static_cast<const float*>(cos_t.data()), static_cast<const float*>(sin_t.data()), 0,
              static_cast<const int32_t*>(pos.data()), 1.0f);
  for (int b = 0; b < B; ++b) {
    ref::Vec want(qkv.begin() + b * T * row, qkv.begin() + (b + 1) * T * row);
    ref::rope_forward(want, 1, T, H, Hkv, D, rope, pos[b]);
    const std::vector<float> got_b(got.begin() + b * T * row, got.begin() + (b + 1) * T * row);
    EXPECT_LE(ref::normalized_error(got_b, want), ref::derived_tolerance(DType::f32, 4))
        << "sequence " << b;
  }
}

}  // namespace
}  // namespace kiln
