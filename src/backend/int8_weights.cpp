#include "backend/int8_weights.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "backend/backend.h"
#include "core/error.h"

namespace kiln {

void Backend::linear_int8(float*, const float*, const uint8_t*, const float*, int64_t, int64_t,
                          int64_t, bool) {
  fail_input("int8 weights", "this backend has no int8 linear layers", "the cpu device", name());
}

float quantize_int8_group(const float* v, int64_t n, int8_t* q) {
  float amax = 0.0f;
  bool finite = true;
  for (int64_t k = 0; k < n; ++k) {
    const float a = std::fabs(v[k]);
    finite = finite && a <= std::numeric_limits<float>::max();
    amax = a > amax ? a : amax;
  }
  if (!finite) {
    for (int64_t k = 0; k < n; ++k) q[k] = 0;
    return std::numeric_limits<float>::quiet_NaN();
  }
  const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
  for (int64_t k = 0; k < n; ++k)
    q[k] = int8_t(std::fmax(-127.0f, std::fmin(127.0f, std::nearbyint(v[k] * inv))));
  return amax / 127.0f;
}

void quantize_int8_weights(uint8_t* q, float* scale, const float* W, int64_t N, int64_t K) {
  for (int64_t i = 0; i < N * K; ++i)
    if (!std::isfinite(W[i]))
      fail_input("int8 weights", "non-finite weight", "finite values",
                 "element " + std::to_string(i));
  const int64_t G = int8_groups(K), Kp = int8_padded(K);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = g * kInt8Group, len = std::min(K - k0, kInt8Group);
      int8_t v[kInt8Group] = {};  // zeros past K: the padding
      scale[n * G + g] = quantize_int8_group(W + n * K + k0, len, v);
      for (int k = 0; k < kInt8Group; ++k) q[n * Kp + k0 + k] = uint8_t(int(v[k]) + 128);
    }
  }
}

}  // namespace kiln
