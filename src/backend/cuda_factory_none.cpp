// make_cuda_backend() of a build without the CUDA backend (see cuda_factory.h).
// CMake compiles this file only when KILN_CUDA is off or no nvcc was found.
#include "backend/cuda_factory.h"

namespace kiln {

std::unique_ptr<Backend> make_cuda_backend(DType, std::string* error) {
  if (error)
    *error =
        "this kiln was built without CUDA (configure with -DKILN_CUDA=ON and "
        "-DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc)";
  return nullptr;
}

bool cuda_backend_built() { return false; }

}  // namespace kiln
