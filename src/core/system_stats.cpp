#include "core/system_stats.h"

#include <dirent.h>
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <vector>

namespace kiln {
namespace {

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool read_small_file(const std::string& path, std::string* out) {
  std::ifstream f(path);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return !f.bad();
}

struct ProcCpu {
  double cpu_s = 0;      // utime + stime of the process, seconds
  double started_s = 0;  // start time, seconds after boot
};

// /proc/<pid>/stat: "pid (comm) state ppid ...". comm may hold spaces and
// parentheses, so fields are counted from the last ')'. Field 14 is utime,
// 15 stime, 22 starttime, all in clock ticks (proc(5)).
std::optional<ProcCpu> read_proc_cpu(pid_t pid) {
  std::string text;
  if (!read_small_file("/proc/" + std::to_string(pid) + "/stat", &text)) return std::nullopt;
  const size_t close = text.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(text.substr(close + 1));
  std::vector<std::string> f;
  for (std::string tok; fields >> tok;) f.push_back(tok);
  if (f.size() < 20) return std::nullopt;  // f[0] is field 3 (state)
  const double hz = double(sysconf(_SC_CLK_TCK));
  ProcCpu c;
  c.cpu_s = (std::strtod(f[11].c_str(), nullptr) + std::strtod(f[12].c_str(), nullptr)) / hz;
  c.started_s = std::strtod(f[19].c_str(), nullptr) / hz;
  return c;
}

std::optional<double> read_rss_mb(pid_t pid) {
  std::string text;
  if (!read_small_file("/proc/" + std::to_string(pid) + "/statm", &text)) return std::nullopt;
  unsigned long long size = 0, resident = 0;
  if (std::sscanf(text.c_str(), "%llu %llu", &size, &resident) != 2) return std::nullopt;
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

std::optional<double> uptime_seconds() {
  std::string text;
  if (!read_small_file("/proc/uptime", &text)) return std::nullopt;
  return std::strtod(text.c_str(), nullptr);
}

// --- NVML, declared here from its documented C ABI so no header is needed ---
using nvmlReturn = int;  // 0 = NVML_SUCCESS
using nvmlDevice = struct NvmlDeviceOpaque*;
struct NvmlUtilization {
  unsigned int gpu, memory;
};
struct NvmlMemory {
  unsigned long long total, free, used;
};

struct Nvml {
  nvmlReturn (*init)() = nullptr;
  nvmlReturn (*count)(unsigned int*) = nullptr;
  nvmlReturn (*handle)(unsigned int, nvmlDevice*) = nullptr;
  nvmlReturn (*utilization)(nvmlDevice, NvmlUtilization*) = nullptr;
  nvmlReturn (*memory)(nvmlDevice, NvmlMemory*) = nullptr;
  nvmlReturn (*power)(nvmlDevice, unsigned int*) = nullptr;  // milliwatts
  nvmlReturn (*name)(nvmlDevice, char*, unsigned int) = nullptr;
  bool ok = false;
};

// Loaded once per process. KILN_NVML_LIB names another library (tests use a
// stand-in); without the driver library dlopen fails and NVML stays off.
const Nvml& nvml() {
  static Nvml lib;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* override_path = std::getenv("KILN_NVML_LIB");
    void* h = dlopen(override_path && *override_path ? override_path : "libnvidia-ml.so.1",
                     RTLD_NOW | RTLD_LOCAL);
    if (!h) return;
    auto sym = [h](const char* a, const char* b) {
      void* p = dlsym(h, a);
      return p ? p : (b ? dlsym(h, b) : nullptr);
    };
    lib.init = reinterpret_cast<nvmlReturn (*)()>(sym("nvmlInit_v2", "nvmlInit"));
    lib.count = reinterpret_cast<nvmlReturn (*)(unsigned int*)>(
        sym("nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"));
    lib.handle = reinterpret_cast<nvmlReturn (*)(unsigned int, nvmlDevice*)>(
        sym("nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"));
    lib.utilization = reinterpret_cast<nvmlReturn (*)(nvmlDevice, NvmlUtilization*)>(
        sym("nvmlDeviceGetUtilizationRates", nullptr));
    lib.memory = reinterpret_cast<nvmlReturn (*)(nvmlDevice, NvmlMemory*)>(
        sym("nvmlDeviceGetMemoryInfo", nullptr));
    lib.power = reinterpret_cast<nvmlReturn (*)(nvmlDevice, unsigned int*)>(
        sym("nvmlDeviceGetPowerUsage", nullptr));
    lib.name = reinterpret_cast<nvmlReturn (*)(nvmlDevice, char*, unsigned int)>(
        sym("nvmlDeviceGetName", nullptr));
    lib.ok = lib.init && lib.count && lib.handle && lib.init() == 0;
    // The library stays loaded for the life of the process (NVML keeps state).
  });
  return lib;
}

}  // namespace

std::optional<GpuReading> read_gpus() {
  const Nvml& lib = nvml();
  if (!lib.ok) return std::nullopt;
  unsigned int n = 0;
  if (lib.count(&n) != 0 || n == 0) return std::nullopt;
  GpuReading r;
  int with_util = 0;
  for (unsigned int i = 0; i < n; ++i) {
    nvmlDevice dev = nullptr;
    if (lib.handle(i, &dev) != 0) continue;
    ++r.count;
    NvmlUtilization u{};
    if (lib.utilization && lib.utilization(dev, &u) == 0) r.util += u.gpu, ++with_util;
    NvmlMemory m{};
    if (lib.memory && lib.memory(dev, &m) == 0) r.mem_mb += double(m.used) / (1024.0 * 1024.0);
    unsigned int mw = 0;
    if (lib.power && lib.power(dev, &mw) == 0) r.power_w += mw / 1000.0, r.has_power = true;
    if (r.name.empty() && lib.name) {
      char buf[96] = {0};
      if (lib.name(dev, buf, sizeof(buf) - 1) == 0) r.name = buf;
    }
  }
  if (r.count == 0) return std::nullopt;
  if (with_util > 0) r.util /= with_util;
  return r;
}

// RAPL package counters: /sys/class/powercap/<zone>/energy_uj counts
// microjoules and wraps at max_energy_range_uj. Only top-level "package-N"
// zones are summed (psys would count the packages twice, subzones are parts).
struct SystemSampler::Rapl {
  struct Zone {
    std::string energy_path;
    double range_uj = 0, last_uj = -1;
  };
  std::vector<Zone> zones;
  double last_time = -1;

  Rapl() {
    const char* root = "/sys/class/powercap";
    DIR* dir = opendir(root);
    if (!dir) return;
    while (dirent* e = readdir(dir)) {
      const std::string entry = e->d_name;
      if (entry.rfind("intel-rapl:", 0) != 0 || entry.find(':', 11) != std::string::npos) continue;
      const std::string base = std::string(root) + "/" + entry;
      std::string name, range, energy;
      if (!read_small_file(base + "/name", &name) || name.rfind("package", 0) != 0) continue;
      if (!read_small_file(base + "/energy_uj", &energy) || energy.empty())
        continue;  // root-only on many systems
      Zone z;
      z.energy_path = base + "/energy_uj";
      if (read_small_file(base + "/max_energy_range_uj", &range))
        z.range_uj = std::strtod(range.c_str(), nullptr);
      zones.push_back(z);
    }
    closedir(dir);
  }

  // Watts over the interval since the previous call; nullopt on the first.
  std::optional<double> read(double now) {
    if (zones.empty()) return std::nullopt;
    double joules = 0;
    bool complete = last_time >= 0;
    for (Zone& z : zones) {
      std::string text;
      if (!read_small_file(z.energy_path, &text) || text.empty()) return std::nullopt;
      const double uj = std::strtod(text.c_str(), nullptr);
      if (z.last_uj >= 0) {
        double delta = uj - z.last_uj;
        if (delta < 0 && z.range_uj > 0) delta += z.range_uj;  // the counter wrapped
        joules += delta / 1e6;
      } else {
        complete = false;
      }
      z.last_uj = uj;
    }
    const double dt = now - last_time;
    last_time = now;
    if (!complete || dt <= 0) return std::nullopt;
    return joules / dt;
  }
};

SystemSampler::SystemSampler(pid_t pid) : pid_(pid), rapl_(std::make_unique<Rapl>()) {}
SystemSampler::~SystemSampler() = default;

bool SystemSampler::nvml_available() const { return nvml().ok; }

SystemSample SystemSampler::sample() {
  SystemSample s;
  s.time = unix_seconds();
  const double now = monotonic_seconds();
  if (auto cpu = read_proc_cpu(pid_)) {
    if (last_wall_s_ >= 0 && now > last_wall_s_) {
      s.cpu_pct = 100.0 * (cpu->cpu_s - last_cpu_s_) / (now - last_wall_s_);
    } else if (auto up = uptime_seconds(); up && *up > cpu->started_s + 0.05) {
      s.cpu_pct = 100.0 * cpu->cpu_s / (*up - cpu->started_s);  // average since the process started
    }
    last_cpu_s_ = cpu->cpu_s;
    last_wall_s_ = now;
  }
  s.rss_mb = read_rss_mb(pid_);
  if (auto g = read_gpus()) {
    s.gpu_count = g->count;
    s.gpu_name = g->name;
    s.gpu_util = g->util;
    s.gpu_mem_mb = g->mem_mb;
    if (g->has_power) s.gpu_power_w = g->power_w;
  }
  s.cpu_power_w = rapl_->read(now);
  return s;
}

nlohmann::json to_system_record(const SystemSample& s) {
  nlohmann::json j = nlohmann::json::object();
  auto put = [&](const char* key, const std::optional<double>& v) {
    if (v) j[key] = *v;
  };
  put("cpu_pct", s.cpu_pct);
  put("rss_mb", s.rss_mb);
  put("gpu_util", s.gpu_util);
  put("gpu_mem_mb", s.gpu_mem_mb);
  put("gpu_power_w", s.gpu_power_w);
  put("cpu_power_w", s.cpu_power_w);
  if (s.gpu_power_w || s.cpu_power_w)
    j["power_w"] = s.gpu_power_w.value_or(0) + s.cpu_power_w.value_or(0);
  if (s.gpu_count > 0) j["gpu_count"] = s.gpu_count, j["gpu_name"] = s.gpu_name;
  return j;
}

nlohmann::json system_record(pid_t pid) {
  static std::mutex mutex;
  static std::map<pid_t, std::unique_ptr<SystemSampler>> samplers;
  std::lock_guard<std::mutex> lock(mutex);
  auto& sampler = samplers[pid];
  if (!sampler) sampler = std::make_unique<SystemSampler>(pid);
  return to_system_record(sampler->sample());
}

}  // namespace kiln
