// Internals of the CPU backend's GEMM layer that other CPU op files (and the
// tests) need, without exposing oneDNN in cpu_backend.h. GemmCache itself is
// defined in gemm_onednn.cpp.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend/cpu/cpu_backend.h"

namespace kiln {

// Grow-only scratch memory owned by the cache, 64-byte aligned, for ops built
// on top of matmul (the classifier's logits chunk). `slot` picks one of
// kGemmScratchSlots independent buffers; the pointer stays valid until the same
// slot is asked for more bytes. Contents are not preserved when it grows.
constexpr int kGemmScratchSlots = 4;
void* gemm_scratch(GemmCache& cache, int slot, size_t bytes);

// How many oneDNN matmul primitives this process has created so far. A shape
// seen before must reuse its primitive, so repeated calls leave this unchanged.
int64_t gemm_primitives_created();

}  // namespace kiln
