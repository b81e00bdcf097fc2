// How Kiln's row-major GEMM is expressed to column-major cuBLAS / cuBLASLt.
//
// A row-major [R, S] matrix is the column-major [S, R] matrix of its transpose, so
//   C[M, N] = op(A)[M, K] op(B)[K, N]        (Kiln, row-major)
// is computed as
//   C^T[N, M] = op(B)^T[N, K] op(A)^T[K, M]  (cuBLAS, column-major)
// with the operands swapped (cuBLAS's first operand is Kiln's B) and their transpose
// flags kept. Plain data, no CUDA: tests/test_cuda_kernels_emulated.cpp checks the
// mapping against a column-major GEMM written out in loops.
#pragma once
#include <cstdint>

namespace kiln {

// One stored column-major operand: `rows` x `cols` at leading dimension `ld`, used
// transposed or not.
struct ColumnMajorOperand {
  bool transpose = false;
  int64_t rows = 0, cols = 0, ld = 0;
};

// cuBLAS's m, n, k, its first operand (Kiln's B), its second (Kiln's A), and C's ld.
struct ColumnMajorGemm {
  int64_t m = 0, n = 0, k = 0;
  ColumnMajorOperand first, second;
  int64_t ldc = 0;
};

inline ColumnMajorGemm column_major_gemm(int64_t M, int64_t N, int64_t K, bool trans_a,
                                         bool trans_b) {
  ColumnMajorGemm g;
  g.m = N;
  g.n = M;
  g.k = K;
  // Kiln B [K, N] is column-major [N, K] (used as is); [N, K] (trans_b) is [K, N], transposed.
  g.first = trans_b ? ColumnMajorOperand{true, K, N, K} : ColumnMajorOperand{false, N, K, N};
  // Kiln A [M, K] is column-major [K, M] (as is); [K, M] (trans_a) is [M, K], transposed.
  g.second = trans_a ? ColumnMajorOperand{true, M, K, M} : ColumnMajorOperand{false, K, M, K};
  g.ldc = N;  // C [M, N] is column-major [N, M]
  return g;
}

}  // namespace kiln
