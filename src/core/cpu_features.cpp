#include "core/cpu_features.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>

namespace kiln {
namespace {

constexpr int kArchGetXcompPerm = 0x1022;
constexpr int kArchReqXcompPerm = 0x1023;
constexpr int kXfeatureXtiledata = 18;

bool request_amx_permission() {
  unsigned long bitmask = 0;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) return false;
  if (syscall(SYS_arch_prctl, kArchGetXcompPerm, &bitmask) != 0) return false;
  return (bitmask & (1ul << kXfeatureXtiledata)) != 0;
}

CpuFeatures detect() {
  CpuFeatures features;
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return features;
  const bool fma = ecx & (1u << 12), f16c = ecx & (1u << 29), osxsave = ecx & (1u << 27);
  if (!osxsave) return features;
  // XCR0: the OS saves YMM (bits 1,2) and ZMM/opmask state (bits 5,6,7).
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_ymm = (xcr0_lo & 0x6) == 0x6, os_zmm = (xcr0_lo & 0xe6) == 0xe6;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool avx2 = ebx & (1u << 5);
  const bool f = ebx & (1u << 16), dq = ebx & (1u << 17), bw = ebx & (1u << 30), vl = ebx & (1u << 31);
  const bool amx_bf16 = edx & (1u << 22), amx_tile = edx & (1u << 24);
  const bool avx512_vnni = ecx & (1u << 11);
  unsigned eax1, ebx1, ecx1, edx1;
  __cpuid_count(7, 1, eax1, ebx1, ecx1, edx1);
  const bool avx512_bf16 = eax1 & (1u << 5);
  features.avx2 = os_ymm && avx2 && fma && f16c;
  features.avx512 = features.avx2 && os_zmm && f && dq && bw && vl;
  features.avx512_bf16 = features.avx512 && avx512_bf16;
  features.avx512_vnni = features.avx512 && avx512_vnni;
  features.amx_bf16 = features.avx512 && amx_bf16 && amx_tile && request_amx_permission();
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) features.model_name = line.substr(colon + 2);
      break;
    }
  }
  return features;
}

Isa best_isa(const CpuFeatures& f) {
  if (f.avx512) return Isa::avx512;
  if (f.avx2) return Isa::avx2;
  return Isa::scalar;
}

Isa initial_cap() {
  const char* env = std::getenv("KILN_ISA");
  Isa cap = Isa::avx512;
  if (env && *env && !parse_isa(env, &cap)) cap = Isa::avx512;
  return cap;
}

std::atomic<int> g_isa_cap{-1};

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect();
  return features;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "?";
}

bool parse_isa(const std::string& name, Isa* isa) {
  if (name == "scalar") *isa = Isa::scalar;
  else if (name == "avx2") *isa = Isa::avx2;
  else if (name == "avx512") *isa = Isa::avx512;
  else return false;
  return true;
}

void set_isa_cap(Isa cap) { g_isa_cap.store(int(cap)); }

Isa active_isa() {
  int cap = g_isa_cap.load();
  if (cap < 0) {
    cap = int(initial_cap());
    g_isa_cap.store(cap);
  }
  const Isa best = best_isa(cpu_features());
  return int(best) < cap ? best : Isa(cap);
}

bool bf16_gemm_native() {
  const CpuFeatures& f = cpu_features();
  return active_isa() == Isa::avx512 && (f.amx_bf16 || f.avx512_bf16);
}

}  // namespace kiln
