// Baseline (x86-64) build of the flash-attention kernels (attention_flash.inc): one
// float per "vector", 4 x 4 register tiles. The fallback where AVX2 is absent or
// capped away (KILN_ISA=scalar); it runs the same block algorithm as the SIMD builds.
#include <math.h>

#include "backend/cpu/attention_kernels.h"

namespace kiln::attention_detail::scalar {
namespace {

struct Simd {
  using V = float;
  static constexpr int W = 1;
  static constexpr int MR = 4;
  static constexpr int NV = 4;
  static V zero() { return 0.0f; }
  static V load(const float* p) { return *p; }
  static void store(float* p, V v) { *p = v; }
  static V set1(float x) { return x; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static V sub(V a, V b) { return a - b; }
  static V mul(V a, V b) { return a * b; }
  static V max(V a, V b) { return a > b ? a : b; }
  static float hmax(V v) { return v; }
  static float hsum(V v) { return v; }
  static V exp2(V x) { return exp2f(x); }
  static void transpose_tile(const float* src, int64_t, float* dst, int64_t) { *dst = *src; }
};

#include "backend/cpu/attention_flash.inc"

}  // namespace
}  // namespace kiln::attention_detail::scalar

namespace kiln::attention_detail {
void forward_head_scalar(const ForwardHeadArgs& args) { scalar::forward_head(args); }
void backward_group_scalar(const BackwardGroupArgs& args) { scalar::backward_group(args); }
void decode_group_scalar(const DecodeGroupArgs& args) { scalar::decode_group(args); }
}  // namespace kiln::attention_detail
