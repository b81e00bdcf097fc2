#include "train/peak_cache.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "backend/cpu/gemm_peak.h"
#include "core/cpu_features.h"

namespace kiln {

std::string peak_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base = xdg && *xdg ? std::filesystem::path(xdg)
                               : home && *home ? std::filesystem::path(home) / ".cache"
                                               : std::filesystem::path("/tmp");
  return (base / "kiln" / "gemm-peak.json").string();
}

bool read_cached_peak(int threads, PeakRecord* record) {
  std::ifstream in(peak_cache_path());
  if (!in) return false;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.value("cpu", "") != cpu_features().model_name || j.value("threads", 0) != threads ||
        j.value("isa", "") != isa_name(active_isa()))
      return false;
    record->fp32_tflops = j.value("fp32_tflops", 0.0);
    record->bf16_tflops = j.value("bf16_tflops", 0.0);
    record->detail = j.value("detail", "");
    return record->fp32_tflops > 0;
  } catch (const std::exception&) {
    return false;  // a damaged cache is simply measured again
  }
}

PeakRecord measure_and_cache_peak(CpuBackend& backend, double seconds_budget) {
  GemmPeak peak = measure_cpu_gemm_peak(backend, seconds_budget);
  PeakRecord r{peak.fp32_tflops, peak.bf16_tflops, peak.detail, true};
  nlohmann::json j = {{"cpu", cpu_features().model_name}, {"threads", backend.threads()},
                      {"isa", isa_name(active_isa())},     {"fp32_tflops", r.fp32_tflops},
                      {"bf16_tflops", r.bf16_tflops},      {"detail", r.detail}};
  // Best effort: a read-only home just means measuring again next time.
  std::error_code ec;
  const std::filesystem::path path = peak_cache_path();
  std::filesystem::create_directories(path.parent_path(), ec);
  const std::string tmp = path.string() + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
  return r;
}

PeakRecord cpu_peak(CpuBackend& backend, double seconds_budget) {
  PeakRecord r;
  if (read_cached_peak(backend.threads(), &r)) return r;
  return measure_and_cache_peak(backend, seconds_budget);
}

}  // namespace kiln
