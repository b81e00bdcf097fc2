#include "backend/int8_weights.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backend/backend.h"
#include "core/error.h"

namespace kiln {

void Backend::linear_int8(float*, const float*, const uint8_t*, const float*, int64_t, int64_t,
                          int64_t, bool) {
  fail_input("int8 weights", "this backend has no int8 linear layers", "the cpu device", name());
}

void quantize_int8_weights(uint8_t* q, float* scale, const float* W, int64_t N, int64_t K) {
  for (int64_t i = 0; i < N * K; ++i)
    if (!std::isfinite(W[i]))
      fail_input("int8 weights", "non-finite weight", "finite values",
                 "element " + std::to_string(i));
  const int64_t G = int8_groups(K), Kp = int8_padded(K);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < N; ++n) {
    const float* w = W + n * K;
    uint8_t* qn = q + n * Kp;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = g * kInt8Group, k1 = std::min(K, k0 + kInt8Group);
      float amax = 0.0f;
      for (int64_t k = k0; k < k1; ++k) amax = std::max(amax, std::fabs(w[k]));
      const float s = int8_scale_of(amax);
      scale[n * G + g] = s;
      const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
      for (int64_t k = k0; k < k1; ++k) {
        const float v = std::nearbyint(w[k] * inv);
        qn[k] = uint8_t(int(std::fmax(-127.0f, std::fmin(127.0f, v))) + 128);
      }
      for (int64_t k = k1; k < k0 + kInt8Group; ++k) qn[k] = 128;
    }
  }
}

}  // namespace kiln
