// Linear layers for a few rows (decoding): y[M, N] (= or +=) x[M, K] W[N, K]^T with
// M <= kGemvMaxRows, the shape of one decode step. Such a product is bound by the
// bandwidth of streaming W, which a general GEMM (packing, blocking for reuse that
// is not there) does not reach; here each weight row is read once for all M rows
// of x. Every y element is summed by one thread in a fixed order (the rows of W
// are split statically over the threads), so results do not depend on the thread
// count; small products stay on the calling thread (a parallel region is a
// barrier, and a decode step is a chain of them).
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace kiln::cpu {

constexpr int64_t kGemvMaxRows = 8;

// True when it computed the product (fp32 or bf16 operands, M <= kGemvMaxRows);
// false to leave it to the general GEMM. Runs at every ISA cap: AVX-512 bodies
// (gemv_avx512.cpp, VDPBF16PS for bf16 where the CPU has AVX512_BF16), portable
// ones below.
bool gemv_linear(float* y, const void* x, const void* W, DType dtype, int64_t M, int64_t N,
                 int64_t K, bool accumulate);

// The AVX-512 bodies, same contract; hw_bf16 selects VDPBF16PS (else bf16 is
// widened to fp32 and multiplied with FMAs).
void gemv_f32_avx512(float* y, const float* x, const float* W, int64_t M, int64_t N, int64_t K,
                     bool accumulate);
void gemv_bf16_avx512(float* y, const uint16_t* x, const uint16_t* W, int64_t M, int64_t N,
                      int64_t K, bool accumulate, bool hw_bf16);

}  // namespace kiln::cpu
