// Creating the CUDA backend without depending on CUDA headers: every build has
// make_cuda_backend(); a build without CUDA (KILN_CUDA=OFF, or no nvcc) gets the
// version in cuda_factory_none.cpp, which always says why there is no CUDA.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"

namespace kiln {

// A CudaBackend on device 0 with `compute_dtype` GEMM operands, or nullptr with the
// reason in *error (built without CUDA, no driver, no device, device too old).
std::unique_ptr<Backend> make_cuda_backend(DType compute_dtype, std::string* error);

// True when this binary was built with the CUDA backend.
bool cuda_backend_built();

}  // namespace kiln
