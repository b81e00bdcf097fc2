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

// --- attention family (attention.cpp) ---
void CpuBackend::attention_forward(float*, float*, const float*, int, int, int, int, int) { pending("attention_forward"); }
void CpuBackend::attention_backward(float*, const float*, const float*, const float*, const float*, int, int, int, int, int) { pending("attention_backward"); }
}  // namespace kiln
