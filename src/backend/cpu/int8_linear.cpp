#include "backend/cpu/int8_linear.h"

#include <algorithm>

#include "backend/cpu/int8_tiles.h"
#include "backend/int8_weights.h"
#include "core/cpu_features.h"

namespace kiln::cpu {
namespace {

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

template <int kW, int kR>
struct ScalarBlock {
  static void run(float* y, int64_t ldy, const int8_t* xq, const float* xs, const int32_t*,
                  const uint8_t* wq, const float* ws, int64_t Kp, int64_t G, bool accumulate) {
    for (int r = 0; r < kR; ++r)
      for (int j = 0; j < kW; ++j) {
        float s = 0.0f;
        for (int64_t g = 0; g < G; ++g) {
          const int8_t* xg = xq + r * Kp + g * kInt8Group;
          const uint8_t* wg = wq + j * Kp + g * kInt8Group;
          int32_t d = 0;
          for (int k = 0; k < kInt8Group; ++k) d += (int32_t(wg[k]) - 128) * int32_t(xg[k]);
          s += float(d) * (ws[j * G + g] * xs[r * G + g]);
        }
        float& out = y[r * ldy + j];
        out = accumulate ? out + s : s;
      }
  }
};

}  // namespace

size_t int8_workspace_bytes(int64_t M, int64_t K) {
  const size_t G = size_t(int8_groups(K));
  return round64(size_t(M) * size_t(int8_padded(K))) + round64(size_t(M) * G * sizeof(float)) +
         size_t(M) * G * 16 * sizeof(int32_t);
}

Int8Rows quantize_int8_rows(void* workspace, const float* x, int64_t M, int64_t K) {
  const int64_t G = int8_groups(K), Kp = int8_padded(K);
  char* base = static_cast<char*>(workspace);
  int8_t* q = reinterpret_cast<int8_t*>(base);
  float* scale = reinterpret_cast<float*>(base + round64(size_t(M * Kp)));
  int32_t* corr = reinterpret_cast<int32_t*>(base + round64(size_t(M * Kp)) +
                                             round64(size_t(M * G) * sizeof(float)));
#pragma omp parallel for schedule(static) if (M * K >= (int64_t(1) << 16))
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t k0 = g * kInt8Group, len = std::min(K - k0, kInt8Group);
      int8_t* qg = q + m * Kp + k0;
      for (int64_t k = len; k < kInt8Group; ++k) qg[k] = 0;
      // A non-finite activation makes its outputs NaN (scale NaN), as fp32 would.
      scale[m * G + g] = quantize_int8_group(x + m * K + k0, len, qg);
      int32_t* cg = corr + (m * G + g) * 16;
      for (int i = 0; i < 16; ++i)
        cg[i] = 128 * (int32_t(qg[4 * i]) + qg[4 * i + 1] + qg[4 * i + 2] + qg[4 * i + 3]);
    }
  }
  return {q, scale, corr};
}

void int8_body_scalar(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M,
                      int64_t N, int64_t K, bool accumulate) {
  int8_tiles::run<ScalarBlock>(y, x, wq, ws, M, N, K, accumulate);
}

void int8_linear(float* y, const float* x, const uint8_t* wq, const float* ws, int64_t M,
                 int64_t N, int64_t K, bool accumulate, void* workspace) {
  const Int8Rows rows = quantize_int8_rows(workspace, x, M, K);
  switch (active_isa()) {
    case Isa::avx512:
      int8_body_avx512(y, rows, wq, ws, M, N, K, accumulate, cpu_features().avx512_vnni);
      break;
    case Isa::avx2: int8_body_avx2(y, rows, wq, ws, M, N, K, accumulate); break;
    default: int8_body_scalar(y, rows, wq, ws, M, N, K, accumulate); break;
  }
}

}  // namespace kiln::cpu
