// The loop nest shared by the int8 linear bodies (int8_linear.h). Weight rows go
// to the threads in tiles of kTileRows (each tile streamed from memory once); in
// a tile, x rows are taken kPassRows at a time (in L1) against blocks of
// kBlockRows weight rows. Block<kW, kR>::run(y, ldy, xq, xs, xc, wq, ws, Kp, G,
// accumulate) computes y[r, j] for r < kR, j < kW.
#pragma once
#include <cstdint>

#include "backend/cpu/int8_linear.h"
#include "backend/int8_weights.h"

namespace kiln::cpu::int8_tiles {

constexpr int kBlockRows = 4, kPassRows = 4;
constexpr int64_t kTileRows = 32;
// Multiply-adds below which a call runs on one thread.
constexpr int64_t kParallelMacs = int64_t(1) << 18;

template <template <int, int> class Block, int kW>
void block_rows(float* y, int64_t N, const Int8Rows& x, int64_t m, int64_t M, const uint8_t* wq,
                const float* ws, int64_t Kp, int64_t G, bool accumulate) {
  float* yb = y + m * N;
  const int8_t* xq = x.q + m * Kp;
  const float* xs = x.scale + m * G;
  const int32_t* xc = x.corr + m * G * 16;
  switch (M - m < kPassRows ? M - m : kPassRows) {
    case 1: Block<kW, 1>::run(yb, N, xq, xs, xc, wq, ws, Kp, G, accumulate); break;
    case 2: Block<kW, 2>::run(yb, N, xq, xs, xc, wq, ws, Kp, G, accumulate); break;
    case 3: Block<kW, 3>::run(yb, N, xq, xs, xc, wq, ws, Kp, G, accumulate); break;
    default: Block<kW, kPassRows>::run(yb, N, xq, xs, xc, wq, ws, Kp, G, accumulate); break;
  }
}

template <template <int, int> class Block>
void run(float* y, const Int8Rows& x, const uint8_t* wq, const float* ws, int64_t M, int64_t N,
         int64_t K, bool accumulate) {
  const int64_t Kp = int8_padded(K), G = int8_groups(K);
  const int64_t tiles = (N + kTileRows - 1) / kTileRows;
#pragma omp parallel for schedule(static) if (M * N * K >= kParallelMacs)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n_end = (t + 1) * kTileRows < N ? (t + 1) * kTileRows : N;
    for (int64_t m = 0; m < M; m += kPassRows)
      for (int64_t n = t * kTileRows; n < n_end; n += kBlockRows) {
        const uint8_t* w = wq + n * Kp;
        const float* s = ws + n * G;
        switch (n_end - n < kBlockRows ? n_end - n : kBlockRows) {
          case 1: block_rows<Block, 1>(y + n, N, x, m, M, w, s, Kp, G, accumulate); break;
          case 2: block_rows<Block, 2>(y + n, N, x, m, M, w, s, Kp, G, accumulate); break;
          case 3: block_rows<Block, 3>(y + n, N, x, m, M, w, s, Kp, G, accumulate); break;
          default: block_rows<Block, kBlockRows>(y + n, N, x, m, M, w, s, Kp, G, accumulate); break;
        }
      }
  }
}

}  // namespace kiln::cpu::int8_tiles
