// Element types and the fp32 <-> bf16 conversions every backend agrees on.
#pragma once
#include <cmath>
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

// IEEE binary16 ("f16", GGUF F16, safetensors F16). half_to_float is exact
// (every half is a float); float_to_half rounds to nearest, ties to even, as
// F16C's VCVTPS2PH does: magnitudes from 65520 up become Inf, NaN stays NaN.
inline float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // Inf / NaN
  } else if (exponent == 0) {
    // Zero or subnormal: value = mantissa * 2^-24, exact in fp32.
    const float magnitude = std::ldexp(float(mantissa), -24);
    std::memcpy(&bits, &magnitude, 4);
    bits |= sign;
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t float_to_half(float value) {
  uint32_t u;
  std::memcpy(&u, &value, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  if (u > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // quiet NaN
  if (u >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520: Inf (65504 is the largest half)
  if (u < 0x38800000u) {
    // Below 2^-14: a subnormal half m * 2^-24. |value| * 2^24 is exact in fp32 and
    // nearbyint rounds it to nearest even (m = 1024 is the smallest normal, bits 0x400).
    float magnitude;
    std::memcpy(&magnitude, &u, 4);
    return uint16_t(sign | uint16_t(std::nearbyint(std::ldexp(magnitude, 24))));
  }
  // Normal: rebias the exponent, keep 10 mantissa bits, round the 13 dropped ones
  // to nearest even; a carry out of the mantissa correctly bumps the exponent.
  uint32_t h = ((((u >> 23) - 127 + 15) << 10) | ((u & 0x7fffffu) >> 13));
  const uint32_t dropped = u & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

}  // namespace kiln
