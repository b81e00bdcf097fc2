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

constexpr int64_t kGemvMaxRows = 4;

// True when it computed the product (fp32 operands, M <= kGemvMaxRows); false to
// leave it to the general GEMM.
bool gemv_linear(float* y, const void* x, const void* W, DType dtype, int64_t M, int64_t N,
                 int64_t K, bool accumulate);

}  // namespace kiln::cpu
