// fp64 oracle of the Qwen attention extras (backend.h semantics): the q/k/v bias
// and the per-head RMSNorm of q and k. The head norm gathers each head into its own
// row and runs the plain rmsnorm oracle on it, so it shares no index arithmetic
// with the fast kernels.
#include <algorithm>
#include <vector>

#include "reference/reference_ops.h"

namespace kiln::ref {

void bias_forward(Vec& y, const Vec& bias, int64_t N, int C) {
  for (int64_t n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) y[n * C + c] += bias[c];
}

void bias_backward(Vec& dbias, const Vec& dy, int64_t N, int C) {
  for (int64_t n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) dbias[c] += dy[n * C + c];
}

namespace {

// Head h of row n: D values starting at n * (H + 2 Hkv) * D + h * D.
struct HeadRows {
  int64_t N;
  int H, Hkv, D;
  int64_t start(int64_t n, int h) const { return (n * (H + 2 * Hkv) + h) * D; }
  Vec gather(const Vec& src, int64_t n, int h) const {
    return Vec(src.begin() + start(n, h), src.begin() + start(n, h) + D);
  }
  void scatter(Vec& dst, const Vec& row, int64_t n, int h) const {
    std::copy(row.begin(), row.end(), dst.begin() + start(n, h));
  }
};

}  // namespace

void head_rmsnorm_forward(Vec& out, Vec& rstd, const Vec& qkv, const Vec& q_weight,
                          const Vec& k_weight, int64_t N, int H, int Hkv, int D, double eps) {
  const HeadRows rows{N, H, Hkv, D};
  out = qkv;  // value heads unchanged
  rstd.assign(size_t(N * (H + Hkv)), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int h = 0; h < H + Hkv; ++h) {
      Vec y, r;
      rmsnorm_forward(y, r, rows.gather(qkv, n, h), h < H ? q_weight : k_weight, 1, D, eps);
      rows.scatter(out, y, n, h);
      rstd[n * (H + Hkv) + h] = r[0];
    }
}

void head_rmsnorm_backward(Vec& dqkv, Vec& dq_weight, Vec& dk_weight, const Vec& qkv,
                           const Vec& q_weight, const Vec& k_weight, const Vec& rstd, int64_t N,
                           int H, int Hkv, int D) {
  const HeadRows rows{N, H, Hkv, D};
  for (int64_t n = 0; n < N; ++n)
    for (int h = 0; h < H + Hkv; ++h) {
      Vec dx(D, 0.0);
      const Vec r{rstd[n * (H + Hkv) + h]};
      rmsnorm_backward(dx, h < H ? dq_weight : dk_weight, rows.gather(dqkv, n, h),
                       rows.gather(qkv, n, h), h < H ? q_weight : k_weight, r, 1, D);
      rows.scatter(dqkv, dx, n, h);
    }
}

}  // namespace kiln::ref
