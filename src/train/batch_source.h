// Turns a token stream into training batches [B, T] of inputs and targets.
//
// --sampling sequential: micro-batch k (= step * accum + micro) row b reads the
//   T+1 tokens starting at (k*B + b) * T, wrapping at the end of the data.
// --sampling random: row b of micro-batch k starts at a position drawn from a
//   counter-based hash of (seed, k, b), uniform over every full window. No
//   generator state advances, so a resumed run draws exactly the same windows.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace kiln {

// Random access to a tokenised corpus.
struct TokenStream {
  int64_t size = 0;  // tokens
  // Reads count tokens starting at offset (offset + count <= size) as int32.
  std::function<void(int64_t offset, int64_t count, int32_t* out)> read;
};

enum class Sampling { sequential, random };

class BatchSource {
 public:
  BatchSource(TokenStream stream, int B, int T, Sampling sampling, uint64_t seed);
  // inputs/targets [B*T]: targets are the inputs shifted by one token.
  void batch(int64_t k, int32_t* inputs, int32_t* targets);
  // Offset of row b of micro-batch k (exposed for tests).
  int64_t row_start(int64_t k, int b) const;

 private:
  void read_wrapped(int64_t start, int64_t count, int32_t* out);
  TokenStream stream_;
  int B_, T_;
  Sampling sampling_;
  uint64_t seed_;
  std::vector<int32_t> window_;  // [T+1]
};

}  // namespace kiln
