// fp32 -> bf16 conversion of a run of values, bit-identical to kiln::float_to_bf16
// (round to nearest even, NaN kept as a quiet NaN, subnormals rounded, not flushed).
// Single-threaded: callers split the work across OpenMP threads themselves.
#pragma once
#include <cstdint>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace kiln {

// dst[n] (=) bf16(src[n]). AVX-512 body in bf16_convert_avx512.cpp; `hw_bf16`
// selects VCVTNEPS2BF16 (AVX512_BF16) for the bulk, with a fix-up for subnormal
// inputs, which that instruction flushes to zero while float_to_bf16 rounds them.
void f32_to_bf16_avx512(uint16_t* dst, const float* src, int64_t n, bool hw_bf16);

inline void f32_to_bf16_scalar(uint16_t* dst, const float* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]).bits;
}

// Picks the widest kernel the active ISA allows.
inline void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) {
  if (active_isa() == Isa::avx512)
    f32_to_bf16_avx512(dst, src, n, cpu_features().avx512_bf16);
  else
    f32_to_bf16_scalar(dst, src, n);
}

}  // namespace kiln
