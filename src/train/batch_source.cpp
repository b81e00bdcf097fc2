#include "train/batch_source.h"

#include "core/error.h"

namespace kiln {
namespace {

// SplitMix64 finaliser: a well-mixed 64-bit hash of a counter.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

BatchSource::BatchSource(TokenStream stream, int B, int T, Sampling sampling, uint64_t seed)
    : stream_(std::move(stream)), B_(B), T_(T), sampling_(sampling), seed_(seed), window_(T + 1) {
  if (stream_.size < int64_t(T) + 1)
    fail_input("--data", "not enough tokens for one sequence",
               "at least " + std::to_string(int64_t(T) + 1) + " tokens (--seq + 1)",
               std::to_string(stream_.size));
}

int64_t BatchSource::row_start(int64_t k, int b) const {
  const int64_t n = stream_.size;
  if (sampling_ == Sampling::sequential) {
    // (k*B + b) * T mod n, without overflowing for long runs.
    const int64_t row = (k * B_ + b) % n;
    return int64_t((__int128(row) * T_) % n);
  }
  const uint64_t windows = uint64_t(n - T_);  // starts 0 .. n-T-1 all fit T+1 tokens
  const uint64_t h = mix64(mix64(seed_ ^ 0x6b696c6eull) + mix64(uint64_t(k)) * 31 + uint64_t(b));
  return int64_t(h % windows);  // bias < windows / 2^64: negligible
}

void BatchSource::read_wrapped(int64_t start, int64_t count, int32_t* out) {
  const int64_t n = stream_.size;
  while (count > 0) {
    const int64_t take = std::min(count, n - start);
    stream_.read(start, take, out);
    out += take;
    count -= take;
    start = 0;
  }
}

void BatchSource::batch(int64_t k, int32_t* inputs, int32_t* targets) {
  for (int b = 0; b < B_; ++b) {
    read_wrapped(row_start(k, b), T_ + 1, window_.data());
    for (int t = 0; t < T_; ++t) {
      inputs[int64_t(b) * T_ + t] = window_[t];
      targets[int64_t(b) * T_ + t] = window_[t + 1];
    }
  }
}

}  // namespace kiln
