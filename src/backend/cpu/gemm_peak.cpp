// Measured GEMM peak of the CPU backend (see gemm_peak.h).
#include "backend/cpu/gemm_peak.h"

#include <algorithm>
#include <cstdio>
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

// Backend memory released on every way out (the bf16 case may throw).
struct BackendBuffer {
  CpuBackend& backend;
  void* ptr;
  BackendBuffer(CpuBackend& b, size_t bytes) : backend(b), ptr(b.alloc(bytes)) {}
  ~BackendBuffer() { backend.release(ptr); }
  BackendBuffer(const BackendBuffer&) = delete;
  BackendBuffer& operator=(const BackendBuffer&) = delete;
};

// Best TFLOPS of C = A B^T at `shape` over repetitions within `seconds`.
double time_shape(CpuBackend& backend, DType dtype, const Shape& shape, double seconds) {
  const size_t elem = dtype_size(dtype);
  const int64_t a_n = shape.M * shape.K, b_n = shape.N * shape.K;
  BackendBuffer A(backend, size_t(a_n) * elem), B(backend, size_t(b_n) * elem);
  BackendBuffer C(backend, size_t(shape.M * shape.N) * sizeof(float));
  float* c = static_cast<float*>(C.ptr);
  {
    // Random operands: some kernels run faster on zeros, which would flatter the peak.
    Rng rng(1234, 5);
    std::vector<float> host(size_t(std::max(a_n, b_n)));
    for (const BackendBuffer* buffer : {&A, &B}) {
      const int64_t n = buffer == &A ? a_n : b_n;
      for (int64_t i = 0; i < n; ++i) host[i] = rng.uniform() - 0.5f;
      backend.cast(buffer->ptr, dtype, host.data(), n);
    }
  }
  const double flops = 2.0 * double(shape.M) * double(shape.N) * double(shape.K);
  backend.matmul(c, A.ptr, B.ptr, dtype, shape.M, shape.N, shape.K, false, true, false);  // warm-up
  double best = 0.0;
  Timer total;
  for (int rep = 0; rep < 1000 && (rep == 0 || total.seconds() < seconds); ++rep) {
    Timer t;
    backend.matmul(c, A.ptr, B.ptr, dtype, shape.M, shape.N, shape.K, false, true, false);
    best = std::max(best, flops / t.seconds() * 1e-12);
  }
  return best;
}

}  // namespace

GemmPeak measure_cpu_gemm_peak(CpuBackend& backend, double seconds_budget) {
  GemmPeak peak;
  std::vector<DType> dtypes = {DType::f32};
  if (active_isa() == Isa::avx512) dtypes.push_back(DType::bf16);  // oneDNN has no bf16 GEMM below
  const double per_case =
      std::max(0.0, seconds_budget) / double(dtypes.size() * std::size(kShapes));
  for (DType dtype : dtypes) {
    for (const Shape& shape : kShapes) {
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

}  // namespace kiln
