// What the CPU can do, read once with cpuid, and the ISA level Kiln's own
// kernels use. The level can be capped for tests and comparisons with the
// KILN_ISA environment variable (scalar | avx2 | avx512) or set_isa_cap().
#pragma once
#include <string>

namespace kiln {

enum class Isa { scalar = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;         // with FMA and F16C
  bool avx512 = false;       // F, BW, DQ, VL
  bool avx512_bf16 = false;  // VCVTNE2PS2BF16 / VDPBF16PS
  bool avx512_vnni = false;  // VPDPBUSD (int8 dot products)
  bool amx_bf16 = false;     // AMX tiles with bf16, and the OS lets us use them
  std::string model_name;    // from /proc/cpuinfo, for reports
};

// Detected once; AMX is reported usable only after the kernel granted the
// tile state (arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)).
const CpuFeatures& cpu_features();

// The ISA the kernels dispatch to: the best the CPU has, capped by KILN_ISA.
Isa active_isa();
void set_isa_cap(Isa cap);  // for tests; takes effect for later dispatches
const char* isa_name(Isa isa);
bool parse_isa(const std::string& name, Isa* isa);

// True where bf16 GEMMs run natively (AMX or AVX512_BF16) and the ISA cap allows them.
bool bf16_gemm_native();

}  // namespace kiln
