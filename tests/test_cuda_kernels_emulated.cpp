// The CUDA attention kernels (tensor-core and fp32 flash attention, forward and
// backward, and the Delta kernel) run on the CPU through tests/cuda_emulation.h and
// are checked against the fp64 oracle, with the tolerances the GPU op harness uses
// (tests/test_cuda_ops.cpp). What this proves without a GPU: the index arithmetic,
// tiling, causal masks, GQA head mapping, online softmax, fragment layouts and shared
// memory use of the very kernel source the GPU runs. What it cannot: timing, real
// memory-model races (threads here are far more ordered than warps), compiler or
// hardware behaviour. Runs in every build, with or without CUDA.
#pragma GCC optimize("no-strict-aliasing")  // the kernels reinterpret shared memory

#include "cuda_emulation.h"
// (the emulation first, then the kernel sources)
#include "backend/cuda/attention_mma_kernels.cuh"
#include "backend/cuda/attention_simt_kernels.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

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
              mma_forward_kernel<D>, r.out.data(), r.lse.data(), o.qkv.data(), s.B, s.T, s.H,
              s.Hkv, n_blocks);
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
