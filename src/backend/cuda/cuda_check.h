// Error checks for CUDA runtime and cuBLAS calls: a failed call becomes a
// RuntimeError naming the op and the library's own message, never an abort.
#pragma once
#include <cuda_runtime_api.h>

#include <string>

#include "core/error.h"

namespace kiln {

inline void cuda_check(cudaError_t status, const char* where, const char* call) {
  if (status != cudaSuccess)
    fail_runtime(std::string("cuda: ") + where, std::string(call) +
                                                    " failed: " + cudaGetErrorName(status) + " (" +
                                                    cudaGetErrorString(status) + ")");
}

}  // namespace kiln

// KILN_CUDA(call, "op name"): runs a CUDA runtime call and throws on failure.
#define KILN_CUDA(call, where) ::kiln::cuda_check((call), (where), #call)
