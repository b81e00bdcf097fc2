// fp64 oracle for causal GQA attention (semantics in src/backend/backend.h).
// Plain loops over the full score matrix of one (sequence, head) at a time:
//   S_ij = q_i . k_j / sqrt(D) for j <= i,  lse_i = log sum_j exp(S_ij),
//   P_ij = exp(S_ij - lse_i),  out_i = sum_j P_ij v_j.
// Backward, from the calculus of softmax and nothing shared with the fast kernels:
//   dP_ij = dout_i . v_j,  dS_ij = P_ij (dP_ij - sum_k P_ik dP_ik),
//   dq_i = sum_j dS_ij k_j / sqrt(D),  dk_j += sum_i dS_ij q_i / sqrt(D),  dv_j += sum_i P_ij
//   dout_i.
#include <algorithm>
#include <cmath>
#include <limits>

#include "reference/reference_ops.h"

namespace kiln::ref {
namespace {

struct Layout {
  int B, T, H, Hkv, D;
  int64_t ld() const { return int64_t(H + 2 * Hkv) * D; }  // qkv row
  int64_t q(int b, int t, int h) const { return (int64_t(b) * T + t) * ld() + int64_t(h) * D; }
  int64_t k(int b, int t, int kv) const { return q(b, t, H + kv); }
  int64_t v(int b, int t, int kv) const { return q(b, t, H + Hkv + kv); }
  int64_t o(int b, int t, int h) const { return (int64_t(b) * T + t) * H * D + int64_t(h) * D; }
  int kv_of(int h) const { return h / (H / Hkv); }
};

double dot(const double* a, const double* b, int D) {
  double s = 0;
  for (int d = 0; d < D; ++d) s += a[d] * b[d];
  return s;
}

// P[T, T] (=) the causal softmax probabilities of head h of sequence b (0 above
// the diagonal), lse[T] (=) their log-sum-exp.
void probabilities(Vec& P, Vec& lse, const Vec& qkv, const Layout& L, int b, int h) {
  const int T = L.T, D = L.D, kv = L.kv_of(h);
  const double scale = 1.0 / std::sqrt(double(D));
  P.assign(size_t(T) * T, 0.0);
  lse.assign(T, 0.0);
  for (int i = 0; i < T; ++i) {
    double* row = &P[size_t(i) * T];
    double m = -std::numeric_limits<double>::infinity();
    for (int j = 0; j <= i; ++j) {
      row[j] = scale * dot(&qkv[L.q(b, i, h)], &qkv[L.k(b, j, kv)], D);
      m = std::max(m, row[j]);
    }
    double sum = 0;
    for (int j = 0; j <= i; ++j) sum += std::exp(row[j] - m);
    lse[i] = m + std::log(sum);
    for (int j = 0; j <= i; ++j) row[j] = std::exp(row[j] - lse[i]);
  }
}

}  // namespace

void attention_forward(Vec& out, Vec& lse, const Vec& qkv, int B, int T, int H, int Hkv, int D) {
  const Layout L{B, T, H, Hkv, D};
  out.assign(size_t(B) * T * H * D, 0.0);
  lse.assign(size_t(B) * H * T, 0.0);
  Vec P, head_lse;
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int kv = L.kv_of(h);
      probabilities(P, head_lse, qkv, L, b, h);
      for (int i = 0; i < T; ++i) {
        lse[(size_t(b) * H + h) * T + i] = head_lse[i];
        double* o = &out[L.o(b, i, h)];
        for (int j = 0; j <= i; ++j) {
          const double p = P[size_t(i) * T + j];
          const double* v = &qkv[L.v(b, j, kv)];
          for (int d = 0; d < D; ++d) o[d] += p * v[d];
        }
      }
    }
  }
}

void attention_decode(Vec& out, Vec& k_cache, Vec& v_cache, const Vec& qkv, int B, int T, int H,
                      int Hkv, int D, const std::vector<int32_t>& pos, int max_len) {
  const size_t row = size_t(H + 2 * Hkv) * D, kv = size_t(Hkv) * D;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (size_t e = 0; e < kv; ++e) {
        const size_t at = (size_t(b) * max_len + pos[b] + t) * kv + e;
        k_cache[at] = qkv[(size_t(b) * T + t) * row + size_t(H) * D + e];
        v_cache[at] = qkv[(size_t(b) * T + t) * row + size_t(H + Hkv) * D + e];
      }
  out.assign(size_t(B) * T * H * D, 0.0);
  const double scale = 1.0 / std::sqrt(double(D));
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H; ++h) {
        const int p = pos[b] + t, g = h / (H / Hkv);
        const double* q = &qkv[(size_t(b) * T + t) * row + size_t(h) * D];
        std::vector<double> s(size_t(p) + 1);
        double m = -INFINITY, sum = 0;
        for (int j = 0; j <= p; ++j) {
          s[j] = scale * dot(q, &k_cache[(size_t(b) * max_len + j) * kv + size_t(g) * D], D);
          m = std::max(m, s[j]);
        }
        for (int j = 0; j <= p; ++j) sum += (s[j] = std::exp(s[j] - m));
        double* o = &out[((size_t(b) * T + t) * H + h) * D];
        for (int j = 0; j <= p; ++j) {
          const double* v = &v_cache[(size_t(b) * max_len + j) * kv + size_t(g) * D];
          for (int d = 0; d < D; ++d) o[d] += s[j] / sum * v[d];
        }
      }
}

void attention_backward(Vec& dqkv, const Vec& dout, const Vec& qkv, int B, int T, int H, int Hkv,
                        int D) {
  const Layout L{B, T, H, Hkv, D};
  const double scale = 1.0 / std::sqrt(double(D));
  dqkv.assign(qkv.size(), 0.0);
  Vec P, head_lse, dS(T);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      const int kv = L.kv_of(h);
      probabilities(P, head_lse, qkv, L, b, h);
      for (int i = 0; i < T; ++i) {
        const double* p = &P[size_t(i) * T];
        const double* g = &dout[L.o(b, i, h)];
        double delta = 0;  // sum_j P_ij dP_ij
        for (int j = 0; j <= i; ++j) {
          dS[j] = dot(g, &qkv[L.v(b, j, kv)], D);  // dP_ij
          delta += p[j] * dS[j];
        }
        for (int j = 0; j <= i; ++j) dS[j] = p[j] * (dS[j] - delta);
        double* dq = &dqkv[L.q(b, i, h)];
        const double* q = &qkv[L.q(b, i, h)];
        for (int j = 0; j <= i; ++j) {
          const double* k = &qkv[L.k(b, j, kv)];
          double* dk = &dqkv[L.k(b, j, kv)];
          double* dv = &dqkv[L.v(b, j, kv)];
          for (int d = 0; d < D; ++d) {
            dq[d] += scale * dS[j] * k[d];
            dk[d] += scale * dS[j] * q[d];
            dv[d] += p[j] * g[d];
          }
        }
      }
    }
  }
}

}  // namespace kiln::ref
