#include "backend/cpu/cpu_backend.h"

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "backend/cpu/int8_linear.h"
#include "core/error.h"

namespace kiln {

DType resolve_cpu_dtype(DTypeChoice choice) {
  switch (choice) {
    case DTypeChoice::fp32:
      return DType::f32;
    case DTypeChoice::bf16:
      if (active_isa() != Isa::avx512)
        fail_input("--dtype", "bf16 GEMMs need AVX-512 on the CPU", "avx512",
                   std::string(isa_name(active_isa())) + "; use --dtype fp32 or auto");
      return DType::bf16;
    case DTypeChoice::auto_:
      return bf16_gemm_native() ? DType::bf16 : DType::f32;
  }
  return DType::f32;
}

CpuBackend::CpuBackend(const CpuBackendOptions& options) : options_(options) {
  if (options.threads > 0) omp_set_num_threads(options.threads);
  if (options.compute_dtype == DType::bf16 && active_isa() != Isa::avx512)
    fail_input("--dtype", "bf16 GEMMs need AVX-512 on the CPU", "avx512", isa_name(active_isa()));
  gemm_.reset(create_gemm_cache());
}

CpuBackend::~CpuBackend() {
  if (int8_workspace_ != nullptr) release(int8_workspace_);
}

void CpuBackend::linear_int8(float* y, const float* x, const uint8_t* wq, const float* ws,
                             int64_t M, int64_t N, int64_t K, bool accumulate) {
  if (M < 0 || N < 0 || K < 0)
    fail_input("linear_int8", "negative dimension", "M, N, K >= 0",
               std::to_string(M) + ", " + std::to_string(N) + ", " + std::to_string(K));
  if (M == 0 || N == 0) return;
  const size_t need = cpu::int8_workspace_bytes(M, K);
  if (need > int8_workspace_bytes_) {
    if (int8_workspace_ != nullptr) release(int8_workspace_);
    int8_workspace_ = alloc(need);
    int8_workspace_bytes_ = need;
  }
  cpu::int8_linear(y, x, wq, ws, M, N, K, accumulate, int8_workspace_);
}

int CpuBackend::threads() const { return omp_get_max_threads(); }

BackendCaps CpuBackend::caps() const {
  BackendCaps c;
  c.device = cpu_features().model_name;
  c.kernels = isa_name(active_isa());
  c.host_memory = true;
  c.bf16_gemm = active_isa() == Isa::avx512;  // oneDNN has no bf16 GEMM below AVX-512
  c.int8_linear = true;
  c.threads = threads();
  return c;
}

std::string CpuBackend::name() const {
  const CpuFeatures& f = cpu_features();
  std::string s = std::string("cpu ") + isa_name(active_isa());
  if (active_isa() == Isa::avx512 && f.amx_bf16)
    s += " amx-bf16";
  else if (active_isa() == Isa::avx512 && f.avx512_bf16)
    s += " avx512-bf16";
  if (active_isa() == Isa::avx512 && f.avx512_vnni) s += " vnni";
  s += std::string(", ") + dtype_name(options_.compute_dtype) + " GEMMs, " +
       std::to_string(threads()) + " threads";
  return s;
}

void* CpuBackend::alloc(size_t bytes) {
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p)
    fail_runtime("cpu backend", "out of memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}

void CpuBackend::release(void* ptr) { std::free(ptr); }

void CpuBackend::upload(void* dst, const void* host_src, size_t bytes) {
  std::memcpy(dst, host_src, bytes);
}

void CpuBackend::download(void* host_dst, const void* src, size_t bytes) {
  std::memcpy(host_dst, src, bytes);
}

void CpuBackend::copy(void* dst, const void* src, size_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  const int64_t chunk = 1 << 20;
  const int64_t n_chunks = (int64_t(bytes) + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t begin = c * chunk, end = std::min<int64_t>(int64_t(bytes), begin + chunk);
    std::memcpy(d + begin, s + begin, size_t(end - begin));
  }
}

void CpuBackend::zero(void* dst, size_t bytes) {
  char* d = static_cast<char*>(dst);
  const int64_t chunk = 1 << 20;
  const int64_t n_chunks = (int64_t(bytes) + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < n_chunks; ++c) {
    const int64_t begin = c * chunk, end = std::min<int64_t>(int64_t(bytes), begin + chunk);
    std::memset(d + begin, 0, size_t(end - begin));
  }
}

}  // namespace kiln
