// The CPU's achievable GEMM throughput, measured through the backend's own
// matmul (oneDNN, whatever kernel it picks here), so MFU is reported against
// what this machine really reaches, not a datasheet number. Used by `kiln bench --peak`.
#pragma once
#include <string>

#include "backend/cpu/cpu_backend.h"

namespace kiln {

struct GemmPeak {
  double fp32_tflops = 0.0;  // best over the measured shapes
  double bf16_tflops = 0.0;  // 0 when bf16 GEMMs are not available (no AVX-512 / capped)
  std::string detail;        // one line per (dtype, shape): "bf16 1024x32000x768: 1.23 TFLOPS"
};

// Times C[M, N] = A[M, K] B[N, K]^T (the linear-layer form) at a few transformer
// shapes, best of several repetitions each, within about `seconds_budget` seconds
// in total (each shape runs at least twice: a warm-up that also creates the primitive,
// and one timed call).
GemmPeak measure_cpu_gemm_peak(CpuBackend& backend, double seconds_budget);

}  // namespace kiln
