// Int8 weights of linear layers (W8A8), the format every backend's linear_int8
// reads. A weight matrix W [N, K] (y = x W^T) is cut into groups of kInt8Group
// consecutive values of a row; each group g of row n has one fp32 scale
//   s[n, g] = max |W[n, k in g]| / 127     (0 for a group of zeros)
// and its values are stored as bytes q = round(W / s) + 128 in [1, 255] (ties to
// even; 128 = 0). Rows are padded to Kp = groups * kInt8Group with q = 128.
//   q     [N, Kp] uint8
//   scale [N, G]  fp32,  G = ceil(K / kInt8Group)
// Activations are quantized the same way per row of x at run time (int8 values
// round(x / sx), sx = max |x in g| / 127), the products summed exactly in int32 per
// group and y = sum over groups of s sx (that sum), in fp32.
#pragma once
#include <cstddef>
#include <cstdint>

namespace kiln {

constexpr int64_t kInt8Group = 64;

inline int64_t int8_groups(int64_t K) { return (K + kInt8Group - 1) / kInt8Group; }
inline int64_t int8_padded(int64_t K) { return int8_groups(K) * kInt8Group; }
inline size_t int8_q_bytes(int64_t N, int64_t K) { return size_t(N * int8_padded(K)); }
inline size_t int8_scale_bytes(int64_t N, int64_t K) {
  return size_t(N * int8_groups(K)) * sizeof(float);
}

// Quantizes W [N, K] (fp32, host memory) into q and scale (host memory, sizes
// above). Throws InputError for a non-finite weight.
void quantize_int8_weights(uint8_t* q, float* scale, const float* W, int64_t N, int64_t K);

// One group of n <= kInt8Group values: q[k] (=) round(v[k] / s) in [-127, 127]
// (ties to even) and returns s = max |v| / 127 (0 for all zeros; NaN when a value
// is not finite, with q all 0). The weight and the activation quantizers both use
// it, so they round alike.
float quantize_int8_group(const float* v, int64_t n, int8_t* q);

}  // namespace kiln
