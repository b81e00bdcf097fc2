// The GEMM peak measurement runs every shape and reports what it measured. (A
// smoke test: numbers themselves are machine- and load-dependent, so no speed is asserted.)
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/gemm_peak.h"

using namespace kiln;

TEST(GemmPeak, MeasuresEveryShapeAndDtype) {
  CpuBackend backend;
  const GemmPeak peak = measure_cpu_gemm_peak(backend, 0.0);  // one timed call per shape
  EXPECT_TRUE(std::isfinite(peak.fp32_tflops));
  EXPECT_GT(peak.fp32_tflops, 0.0);
  EXPECT_NE(peak.detail.find("fp32 1024x2048x768"), std::string::npos) << peak.detail;
  EXPECT_NE(peak.detail.find("fp32 1024x32000x768"), std::string::npos) << peak.detail;
  if (active_isa() == Isa::avx512) {
    EXPECT_GT(peak.bf16_tflops, 0.0) << peak.detail;
  } else {
    EXPECT_EQ(peak.bf16_tflops, 0.0);
  }
  std::printf("%s", peak.detail.c_str());
}
