// What the machine is doing while Kiln trains: a process's CPU use and RSS
// (from /proc/<pid>/stat and /proc/<pid>/statm), GPU utilisation, memory and
// power through NVML when the NVIDIA driver library is present (opened at run
// time with dlopen, so Kiln neither links nor needs it), and CPU package power
// from the RAPL counters under /sys/class/powercap when they are readable
// (often root-only). Anything unavailable is simply absent.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace kiln {

struct SystemSample {
  double time = 0;                 // unix seconds
  std::optional<double> cpu_pct;   // % of one core since the previous sample (100 = one core busy)
  std::optional<double> rss_mb;    // resident set size
  std::optional<double> gpu_util;  // % (mean over the GPUs)
  std::optional<double> gpu_mem_mb;   // memory used on the GPUs (sum)
  std::optional<double> gpu_power_w;  // board power of the GPUs (sum)
  std::optional<double> cpu_power_w;  // CPU package power (sum of the RAPL packages)
  int gpu_count = 0;
  std::string gpu_name;
};

// Samples one process and the machine. CPU % and package power are rates, so
// they come from the difference to the previous sample (the first CPU % is the
// average since the process started; the first package power is absent).
class SystemSampler {
 public:
  explicit SystemSampler(pid_t pid);
  ~SystemSampler();
  SystemSampler(const SystemSampler&) = delete;
  SystemSampler& operator=(const SystemSampler&) = delete;

  SystemSample sample();
  pid_t pid() const { return pid_; }
  bool nvml_available() const;

 private:
  pid_t pid_;
  double last_cpu_s_ = -1,
         last_wall_s_ = -1;  // process CPU seconds and monotonic time of the last sample
  struct Rapl;
  std::unique_ptr<Rapl> rapl_;
};

// The sample as a metrics.jsonl "system" record body (no "type"/"time":
// MetricsLog adds them): cpu_pct, rss_mb, gpu_util, gpu_mem_mb, gpu_power_w,
// cpu_power_w, and power_w = the sum of the power readings present.
nlohmann::json to_system_record(const SystemSample& s);

// For the trainer: one "system" record for `pid`, keeping the previous sample
// per pid between calls so CPU % and power are rates over the interval.
nlohmann::json system_record(pid_t pid);

// The NVML library's readings (shared by every sampler; loaded on first use).
struct GpuReading {
  int count = 0;
  double util = 0, mem_mb = 0, power_w = 0;
  bool has_power = false;
  std::string name;
};
std::optional<GpuReading> read_gpus();

}  // namespace kiln
