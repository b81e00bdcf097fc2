// The GEMM peak measurement runs every shape and reports numbers in a plausible
// band: above a naive triple loop timed here on the same machine (oneDNN's
// blocked, vectorised, multi-threaded kernel beats it many times over even on a
// loaded machine), and below what the cores could do at all (FMA units x lanes x
// a generous 6 GHz clock per thread).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/gemm_peak.h"
#include "core/rng.h"
#include "core/timer.h"

using namespace kiln;

namespace {

// TFLOPS of the plain i-j-k loop over C = A B^T at 192^3, best of 3.
double naive_gemm_tflops() {
  const int n = 192;
  std::vector<float> a(n * n), b(n * n), c(n * n);
  Rng rng(3, 4);
  for (float& x : a) x = rng.uniform();
  for (float& x : b) x = rng.uniform();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    Timer t;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        float acc = 0;
        for (int k = 0; k < n; ++k) acc += a[i * n + k] * b[j * n + k];
        c[i * n + j] = acc;
      }
    best = std::max(best, 2.0 * n * n * n / t.seconds() * 1e-12);
  }
  volatile float sink = c[n + 1];
  (void)sink;
  return best;
}

}  // namespace

TEST(GemmPeak, EveryShapeAndDtypeWithinAPlausibleBand) {
  CpuBackend backend;
  const GemmPeak peak = measure_gemm_peak(backend, 0.0);  // one timed call per shape
  std::printf("%s", peak.detail.c_str());
  EXPECT_NE(peak.detail.find("fp32 1024x2048x768"), std::string::npos) << peak.detail;
  EXPECT_NE(peak.detail.find("fp32 1024x32000x768"), std::string::npos) << peak.detail;
  ASSERT_TRUE(std::isfinite(peak.fp32_tflops));

  const double naive = naive_gemm_tflops();
  std::printf("naive loop: %.4f TFLOPS\n", naive);
  EXPECT_GT(peak.fp32_tflops, 2.0 * naive) << "no faster than a naive loop";
  // fp32: 2 FMA units x 16 lanes x 2 FLOPs per cycle (AVX-512); AMX bf16: 1024 per cycle.
  const double threads = backend.threads();
  EXPECT_LT(peak.fp32_tflops, threads * 64 * 6e9 * 1e-12) << "faster than the hardware can be";
  if (backend.caps().bf16_gemm) {
    EXPECT_GT(peak.bf16_tflops, 2.0 * naive) << peak.detail;
    EXPECT_LT(peak.bf16_tflops, threads * 1024 * 6e9 * 1e-12);
  } else {
    EXPECT_EQ(peak.bf16_tflops, 0.0);
  }
}
