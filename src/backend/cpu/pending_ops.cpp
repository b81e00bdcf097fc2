// TEMPORARY while the op families are written in parallel: each op here throws
// until its real implementation replaces it. Deleted once every op is in place.
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace kiln {
namespace {
[[noreturn]] void pending(const char* op) { fail_runtime("cpu backend", std::string(op) + " is not implemented yet"); }
}  // namespace

// --- attention family (attention.cpp) ---
void CpuBackend::attention_forward(float*, float*, const float*, int, int, int, int, int) { pending("attention_forward"); }
void CpuBackend::attention_backward(float*, const float*, const float*, const float*, const float*, int, int, int, int, int) { pending("attention_backward"); }
}  // namespace kiln
