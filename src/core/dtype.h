// Element types and the fp32 <-> bf16 conversions every backend agrees on.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace kiln {

enum class DType : uint8_t { f32, bf16 };

inline size_t dtype_size(DType dtype) { return dtype == DType::f32 ? 4 : 2; }
inline const char* dtype_name(DType dtype) { return dtype == DType::f32 ? "fp32" : "bf16"; }

// bf16 is the top half of an fp32. Rounding is to nearest, ties to even, as
// hardware converters (VCVTNEPS2BF16, CUDA __float2bfloat16) do; NaN stays NaN.
struct bf16 {
  uint16_t bits;
};

inline bf16 float_to_bf16(float value) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40u)};  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return bf16{uint16_t(u >> 16)};
}

inline float bf16_to_float(bf16 value) {
  uint32_t u = uint32_t(value.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace kiln
