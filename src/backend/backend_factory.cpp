#include "backend/backend_factory.h"

#include "backend/cpu/cpu_backend.h"
#include "backend/cuda_factory.h"
#include "core/error.h"

namespace kiln {

bool parse_dtype_choice(const std::string& name, DTypeChoice* choice) {
  if (name == "auto")
    *choice = DTypeChoice::auto_;
  else if (name == "fp32")
    *choice = DTypeChoice::fp32;
  else if (name == "bf16")
    *choice = DTypeChoice::bf16;
  else
    return false;
  return true;
}

bool parse_device_kind(const std::string& name, DeviceKind* kind) {
  if (name == "cpu")
    *kind = DeviceKind::cpu;
  else if (name == "cuda")
    *kind = DeviceKind::cuda;
  else
    return false;
  return true;
}

std::unique_ptr<Backend> make_backend(const BackendRequest& request) {
  if (request.device == DeviceKind::cuda) {
    std::string why;
    // bf16 is the CUDA default (tensor cores); fp32 when asked for.
    const DType dtype = request.dtype == DTypeChoice::fp32 ? DType::f32 : DType::bf16;
    auto cuda = make_cuda_backend(dtype, &why);
    if (!cuda)
      fail_input("--device", "CUDA is not available here: " + why, "cuda with a usable GPU",
                 "none");
    return cuda;
  }
  CpuBackendOptions options;
  options.compute_dtype = resolve_cpu_dtype(request.dtype);
  options.threads = request.threads;
  return std::make_unique<CpuBackend>(options);
}

}  // namespace kiln
