// TEMPORARY while the op families are written in parallel: each op here throws
// until its real implementation replaces it. Deleted once every op is in place.
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {
[[noreturn]] void pending(const char* op) { fail_runtime("cpu backend", std::string(op) + " is not implemented yet"); }
}  // namespace

// --- gemm family (gemm_onednn.cpp, classifier.cpp) ---
GemmCache* create_gemm_cache() { return nullptr; }
void GemmCacheDeleter::operator()(GemmCache*) const {}
void CpuBackend::matmul(float*, const void*, const void*, DType, int64_t, int64_t, int64_t, bool, bool, bool) { pending("matmul"); }
void CpuBackend::cast(void*, DType, const float*, int64_t) { pending("cast"); }
void CpuBackend::classifier_forward_backward(float*, float*, float*, const void*, const void*, DType, const int32_t*, int64_t, int, int, float) { pending("classifier_forward_backward"); }


// --- elementwise family ---
void CpuBackend::add(float*, const float*, const float*, int64_t) { pending("add"); }
void CpuBackend::embedding_forward(float*, const int32_t*, const float*, int64_t, int) { pending("embedding_forward"); }
void CpuBackend::embedding_backward(float*, const int32_t*, const float*, int64_t, int) { pending("embedding_backward"); }
void CpuBackend::rmsnorm_forward(void*, DType, float*, const float*, const float*, int64_t, int, float) { pending("rmsnorm_forward"); }
void CpuBackend::rmsnorm_backward(float*, float*, const float*, const float*, const float*, const float*, int64_t, int) { pending("rmsnorm_backward"); }
void CpuBackend::rope_forward(float*, int, int, int, int, int, double, int) { pending("rope_forward"); }
void CpuBackend::rope_backward(float*, int, int, int, int, int, double, int) { pending("rope_backward"); }
void CpuBackend::swiglu_forward(void*, DType, const float*, int64_t, int) { pending("swiglu_forward"); }
void CpuBackend::swiglu_backward(float*, const float*, const float*, int64_t, int) { pending("swiglu_backward"); }
void CpuBackend::global_norm(float*, const float*, int64_t) { pending("global_norm"); }
void CpuBackend::adamw(float*, void*, DType, const float*, float*, float*, int64_t, const AdamWHyper&, const float*) { pending("adamw"); }
}  // namespace kiln
