// The machine's measured GEMM peak, which MFU is reported against. Measured by
// `kiln bench --peak` (or on first need) and cached per CPU model and thread
// count in $XDG_CACHE_HOME/kiln/gemm-peak.json (~/.cache/kiln/...).
#pragma once
#include <string>

#include "backend/cpu/cpu_backend.h"

namespace kiln {

struct PeakRecord {
  double fp32_tflops = 0, bf16_tflops = 0;
  std::string detail;
  bool measured_now = false;
};

std::string peak_cache_path();
// The cached record for this CPU and thread count, if any (false otherwise).
bool read_cached_peak(int threads, PeakRecord* record);
// Measures with the backend (seconds_budget bounds the time) and updates the cache.
PeakRecord measure_and_cache_peak(CpuBackend& backend, double seconds_budget);
// Cached when possible, else measured (and cached).
PeakRecord cpu_peak(CpuBackend& backend, double seconds_budget);
inline double peak_for(const PeakRecord& r, DType dtype) {
  return dtype == DType::bf16 ? r.bf16_tflops : r.fp32_tflops;
}

}  // namespace kiln
