// make_cuda_backend() of a build with the CUDA backend (see backend/cuda_factory.h).
#include "backend/cuda_factory.h"

#include <exception>

#include "backend/cuda/cuda_backend.h"

namespace kiln {

std::unique_ptr<Backend> make_cuda_backend(DType compute_dtype, std::string* error) {
  std::string why;
  if (!cuda_available(&why)) {
    if (error) *error = why;
    return nullptr;
  }
  CudaBackendOptions options;
  options.compute_dtype = compute_dtype;
  try {
    return std::make_unique<CudaBackend>(options);
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return nullptr;
  }
}

bool cuda_backend_built() { return true; }

}  // namespace kiln
