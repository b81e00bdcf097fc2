// Measured GEMM peak of the CPU backend (see gemm_peak.h).
#include "backend/cpu/gemm_peak.h"

#include <algorithm>
#include <cstdio>
#include <vector>

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

// Best TFLOPS of C = A B^T at `shape` over repetitions within `seconds`.
double time_shape(CpuBackend& backend, DType dtype, const Shape& shape, double seconds) {
  const size_t elem = dtype_size(dtype);
  const int64_t a_n = shape.M * shape.K, b_n = shape.N * shape.K;
  void* A = backend.alloc(size_t(a_n) * elem);
  void* B = backend.alloc(size_t(b_n) * elem);
  float* C = static_cast<float*>(backend.alloc(size_t(shape.M * shape.N) * sizeof(float)));
  {
    // Random operands: some kernels run faster on zeros, which would flatter the peak.
    Rng rng(1234, 5);
    std::vector<float> host(size_t(std::max(a_n, b_n)));
    for (auto* buffer : {A, B}) {
      const int64_t n = buffer == A ? a_n : b_n;
      for (int64_t i = 0; i < n; ++i) host[i] = rng.uniform() - 0.5f;
      backend.cast(buffer, dtype, host.data(), n);
    }
  }
  const double flops = 2.0 * double(shape.M) * double(shape.N) * double(shape.K);
  backend.matmul(C, A, B, dtype, shape.M, shape.N, shape.K, false, true, false);  // warm-up
  double best = 0.0;
  Timer total;
  for (int rep = 0; rep < 1000 && (rep == 0 || total.seconds() < seconds); ++rep) {
    Timer t;
    backend.matmul(C, A, B, dtype, shape.M, shape.N, shape.K, false, true, false);
    best = std::max(best, flops / t.seconds() * 1e-12);
  }
  backend.release(A);
  backend.release(B);
  backend.release(C);
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
      const double tflops = time_shape(backend, dtype, shape, per_case);
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
