// Measured GEMM peak of a backend (see gemm_peak.h).
#include "backend/gemm_peak.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"

namespace kiln {
namespace {

struct Shape {
  int64_t M, N, K;
};

// Token rows x output features x input features of a Stories110M-sized step:
// an FFN-sized projection and the classifier.
constexpr Shape kShapes[] = {{1024, 2048, 768}, {1024, 32000, 768}};
// A GPU needs a larger problem than a training step's small GEMMs to reach its ceiling.
constexpr Shape kDeviceShape = {8192, 8192, 8192};

// Backend memory released on every way out (the bf16 case may throw).
struct BackendBuffer {
  Backend& backend;
  void* ptr;
  BackendBuffer(Backend& b, size_t bytes) : backend(b), ptr(b.alloc(bytes)) {}
  ~BackendBuffer() { backend.release(ptr); }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
};

// Random operands in `dtype`: some kernels run faster on zeros, which would flatter the peak.
void fill_random(Backend& backend, void* dst, DType dtype, int64_t n) {
  Rng rng(1234, 5);
  std::vector<float> host(static_cast<size_t>(n));
  for (float& v : host) v = rng.uniform() - 0.5f;
  BackendBuffer staging(backend, size_t(n) * sizeof(float));
  backend.upload(staging.ptr, host.data(), size_t(n) * sizeof(float));
  backend.cast(dst, dtype, static_cast<const float*>(staging.ptr), n);
}

// Best TFLOPS of C = A B^T at `shape` over repetitions within `seconds`.
double time_shape(Backend& backend, DType dtype, const Shape& shape, double seconds) {
  const size_t elem = dtype_size(dtype);
  const int64_t a_n = shape.M * shape.K, b_n = shape.N * shape.K;
  BackendBuffer A(backend, size_t(a_n) * elem), B(backend, size_t(b_n) * elem);
  BackendBuffer C(backend, size_t(shape.M * shape.N) * sizeof(float));
  fill_random(backend, A.ptr, dtype, a_n);
  fill_random(backend, B.ptr, dtype, b_n);
  float* c = static_cast<float*>(C.ptr);
  const double flops = 2.0 * double(shape.M) * double(shape.N) * double(shape.K);
  backend.matmul(c, A.ptr, B.ptr, dtype, shape.M, shape.N, shape.K, false, true, false);  // warm-up
  backend.synchronize();
  double best = 0.0;
  Timer total;
  for (int rep = 0; rep < 1000 && (rep == 0 || total.seconds() < seconds); ++rep) {
    Timer t;
    backend.matmul(c, A.ptr, B.ptr, dtype, shape.M, shape.N, shape.K, false, true, false);
    backend.synchronize();
    best = std::max(best, flops / t.seconds() * 1e-12);
  }
  return best;
}

// The cache key: the hardware, the kernel variant (ISA cap, GPU arch) and the threads.
nlohmann::json cache_key(const Backend& backend) {
  const BackendCaps caps = backend.caps();
  return {{"device", caps.device}, {"kernels", caps.kernels}, {"threads", caps.threads}};
}

}  // namespace

GemmPeak measure_gemm_peak(Backend& backend, double seconds_budget) {
  GemmPeak peak;
  peak.measured_now = true;
  const BackendCaps caps = backend.caps();
  std::vector<DType> dtypes = {DType::f32};
  if (caps.bf16_gemm) dtypes.push_back(DType::bf16);
  std::vector<Shape> shapes(std::begin(kShapes), std::end(kShapes));
  if (!caps.host_memory) shapes.push_back(kDeviceShape);
  const double per_case = std::max(0.0, seconds_budget) / double(dtypes.size() * shapes.size());
  for (DType dtype : dtypes) {
    for (const Shape& shape : shapes) {
      double tflops = 0.0;
      try {
        tflops = time_shape(backend, dtype, shape, per_case);
      } catch (const RuntimeError& e) {
        // oneDNN capped below AVX-512 (ONEDNN_MAX_CPU_ISA) has no bf16 kernel: report 0.
        if (dtype != DType::bf16) throw;
        peak.detail += std::string("bf16: not available (") + e.what() + ")\n";
        break;
      }
      double& best = dtype == DType::f32 ? peak.fp32_tflops : peak.bf16_tflops;
      best = std::max(best, tflops);
      char line[128];
      std::snprintf(line, sizeof line, "%s %lldx%lldx%lld: %.3f TFLOPS\n", dtype_name(dtype),
                    (long long)shape.M, (long long)shape.N, (long long)shape.K, tflops);
      peak.detail += line;
    }
  }
  return peak;
}

std::string gemm_peak_cache_path() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  const char* home = std::getenv("HOME");
  std::filesystem::path base = xdg && *xdg     ? std::filesystem::path(xdg)
                               : home && *home ? std::filesystem::path(home) / ".cache"
                                               : std::filesystem::path("/tmp");
  return (base / "kiln" / "gemm-peak.json").string();
}

bool read_cached_gemm_peak(const Backend& backend, GemmPeak* peak) {
  std::ifstream in(gemm_peak_cache_path());
  if (!in) return false;
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (j.value("key", nlohmann::json()) != cache_key(backend)) return false;
    peak->fp32_tflops = j.value("fp32_tflops", 0.0);
    peak->bf16_tflops = j.value("bf16_tflops", 0.0);
    peak->detail = j.value("detail", "");
    peak->measured_now = false;
    return peak->fp32_tflops > 0;
  } catch (const std::exception&) {
    return false;  // a damaged cache is simply measured again
  }
}

GemmPeak measure_and_cache_gemm_peak(Backend& backend, double seconds_budget) {
  GemmPeak peak = measure_gemm_peak(backend, seconds_budget);
  nlohmann::json j = {{"key", cache_key(backend)},
                      {"fp32_tflops", peak.fp32_tflops},
                      {"bf16_tflops", peak.bf16_tflops},
                      {"detail", peak.detail}};
  std::error_code ec;
  const std::filesystem::path path = gemm_peak_cache_path();
  std::filesystem::create_directories(path.parent_path(), ec);
  const std::string tmp = path.string() + ".tmp-" + std::to_string(getpid());
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
  return peak;
}

GemmPeak gemm_peak(Backend& backend, double seconds_budget) {
  GemmPeak peak;
  if (read_cached_gemm_peak(backend, &peak)) return peak;
  return measure_and_cache_gemm_peak(backend, seconds_budget);
}

}  // namespace kiln
