// Choosing and creating a backend: the one place that maps a device name and a
// dtype choice to a Backend, used by training, `kiln bench` and sampling alike.
#pragma once
#include <memory>
#include <string>

#include "backend/backend.h"

namespace kiln {

// The GEMM operand dtype a user asks for; `auto_` lets the backend pick
// (bf16 where it runs natively, else fp32).
enum class DTypeChoice { auto_, fp32, bf16 };
bool parse_dtype_choice(const std::string& name, DTypeChoice* choice);

enum class DeviceKind { cpu, cuda };
bool parse_device_kind(const std::string& name, DeviceKind* kind);

struct BackendRequest {
  DeviceKind device = DeviceKind::cpu;
  DTypeChoice dtype = DTypeChoice::auto_;
  int threads = 0;  // CPU threads; 0 = OpenMP's default
};

// The backend for `request`. InputError (where "device" / "dtype") when it cannot
// exist here: CUDA without a usable GPU, bf16 on a CPU without bf16 GEMMs.
std::unique_ptr<Backend> make_backend(const BackendRequest& request);

}  // namespace kiln
