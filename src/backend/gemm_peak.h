// The achievable GEMM throughput of a backend, measured through its own matmul
// (oneDNN on the CPU, cuBLASLt on CUDA, whatever kernel each picks here), so MFU
// is reported against what this machine really reaches, not a datasheet number.
// `kiln bench --peak` measures it; training and `kiln bench` read it from a cache
// in $XDG_CACHE_HOME/kiln/gemm-peak.json (~/.cache/kiln/...), keyed by the device,
// its kernel variant (ISA cap, GPU arch) and thread count, and measured again when one changes.
#pragma once
#include <string>

#include "backend/backend.h"

namespace kiln {

struct GemmPeak {
  double fp32_tflops = 0.0;   // best over the measured shapes
  double bf16_tflops = 0.0;   // 0 when the backend has no bf16 GEMM (e.g. a CPU below AVX-512)
  std::string detail;         // one line per (dtype, shape): "bf16 1024x32000x768: 1.23 TFLOPS"
  bool measured_now = false;  // false when it came from the cache
};

// Times C[M, N] = A[M, K] B[N, K]^T (the linear-layer form) at a few transformer
// shapes (on a device with its own memory also one large square shape), best of
// several repetitions each, within about `seconds_budget` seconds in total (each
// shape runs at least twice: a warm-up that also creates the primitive, and one
// timed call).
GemmPeak measure_gemm_peak(Backend& backend, double seconds_budget);

std::string gemm_peak_cache_path();
// The cached peak for this backend, if any (false otherwise).
bool read_cached_gemm_peak(const Backend& backend, GemmPeak* peak);
// Measures and updates the cache (best effort: a read-only home just measures again next time).
GemmPeak measure_and_cache_gemm_peak(Backend& backend, double seconds_budget);
// Cached when possible, else measured (and cached).
GemmPeak gemm_peak(Backend& backend, double seconds_budget);

inline double peak_for(const GemmPeak& peak, DType dtype) {
  return dtype == DType::bf16 ? peak.bf16_tflops : peak.fp32_tflops;
}

}  // namespace kiln
