// fp64 oracle of the elementwise ops (embedding, RMSNorm, RoPE, SwiGLU, grad norm,
// AdamW): the formulas of backend.h as plain loops. Outputs documented (=) are resized
// here; (+=) outputs must already have their size.
#include <cmath>

#include "reference/reference_ops.h"

namespace kiln::ref {

// out[N, C] (=) table[tokens[i], :]
void embedding_forward(Vec& out, const std::vector<int32_t>& tokens, const Vec& table, int C) {
  const int64_t N = int64_t(tokens.size());
  out.assign(size_t(N * C), 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int c = 0; c < C; ++c) out[i * C + c] = table[int64_t(tokens[i]) * C + c];
}

// dtable[tokens[i], :] (+=) dout[i, :]
void embedding_backward(Vec& dtable, const std::vector<int32_t>& tokens, const Vec& dout, int C) {
  const int64_t N = int64_t(tokens.size());
  for (int64_t i = 0; i < N; ++i)
    for (int c = 0; c < C; ++c) dtable[int64_t(tokens[i]) * C + c] += dout[i * C + c];
}

// rstd_i = 1 / sqrt(mean_c x_ic^2 + eps);  out_ic = x_ic rstd_i w_c
void rmsnorm_forward(Vec& out, Vec& rstd, const Vec& x, const Vec& weight, int64_t N, int C,
                     double eps) {
  out.assign(size_t(N * C), 0.0);
  rstd.assign(size_t(N), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    double sum_sq = 0;
    for (int c = 0; c < C; ++c) sum_sq += x[i * C + c] * x[i * C + c];
    rstd[i] = 1.0 / std::sqrt(sum_sq / C + eps);
    for (int c = 0; c < C; ++c) out[i * C + c] = x[i * C + c] * rstd[i] * weight[c];
  }
}

// With r = rstd_i:  dx_ij += r w_j g_ij - x_ij r^3 (1/C) sum_c w_c g_ic x_ic,
//                   dweight_c += sum_i g_ic x_ic r_i
void rmsnorm_backward(Vec& dx, Vec& dweight, const Vec& dout, const Vec& x, const Vec& weight,
                      const Vec& rstd, int64_t N, int C) {
  for (int64_t i = 0; i < N; ++i) {
    const double r = rstd[i];
    double dot = 0;
    for (int c = 0; c < C; ++c) dot += weight[c] * dout[i * C + c] * x[i * C + c];
    for (int c = 0; c < C; ++c) {
      dx[i * C + c] += r * weight[c] * dout[i * C + c] - x[i * C + c] * r * r * r * dot / C;
      dweight[c] += dout[i * C + c] * x[i * C + c] * r;
    }
  }
}

namespace {
// Frequency of pair i, written from the Llama 3 reference recipe: wavelengths
// shorter than original / high_freq_factor keep theta^(-2i/D), longer than
// original / low_freq_factor are divided by factor, and in between the two are
// blended with weight smooth = (original / wavelength - low) / (high - low).
double frequency(const RopeParams& rope, int i, int D) {
  const double base = 1.0 / std::pow(rope.theta, double(2 * i) / double(D));
  const auto& s = rope.scaling;
  if (s.factor <= 0) return std::pow(rope.theta, -2.0 * i / D);
  const double wavelength = 2.0 * std::acos(-1.0) / base;
  const double low_wavelength = s.original_max_position_embeddings / s.low_freq_factor;
  const double high_wavelength = s.original_max_position_embeddings / s.high_freq_factor;
  if (wavelength > low_wavelength) return base / s.factor;
  if (wavelength < high_wavelength) return base;
  const double smooth = (s.original_max_position_embeddings / wavelength - s.low_freq_factor) /
                        (s.high_freq_factor - s.low_freq_factor);
  return smooth * base + (1.0 - smooth) * base / s.factor;
}

// Rotates the q and k heads of qkv [B, T, (H + 2 Hkv) D] by +angle (sign 1) or by
// -angle (sign -1, the transpose), angle = (pos0 + t) frequency(i).
void rope_rotate(Vec& qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope, int pos0,
                 double sign) {
  const int half = D / 2;
  const int64_t row = int64_t(H + 2 * Hkv) * D;
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int h = 0; h < H + Hkv; ++h) {
        double* x = qkv.data() + (int64_t(b) * T + t) * row + int64_t(h) * D;
        for (int i = 0; i < half; ++i) {
          const double angle = double(pos0 + t) * frequency(rope, i, D);
          const double c = std::cos(angle), s = sign * std::sin(angle);
          const double lo = x[i], hi = x[i + half];
          x[i] = lo * c - hi * s;
          x[i + half] = hi * c + lo * s;
        }
      }
}
}  // namespace

void rope_forward(Vec& qkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                  int pos0) {
  rope_rotate(qkv, B, T, H, Hkv, D, rope, pos0, 1.0);
}

void rope_backward(Vec& dqkv, int B, int T, int H, int Hkv, int D, const RopeParams& rope,
                   int pos0) {
  rope_rotate(dqkv, B, T, H, Hkv, D, rope, pos0, -1.0);
}

double rope_frequency(const RopeParams& rope, int i, int D) { return frequency(rope, i, D); }

namespace {
double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }
}  // namespace

// out[N, F] (=) silu(h1) h3 with h13 [N, 2F] = [h1 | h3]
void swiglu_forward(Vec& out, const Vec& h13, int64_t N, int F) {
  out.assign(size_t(N * F), 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int j = 0; j < F; ++j) {
      const double a = h13[i * 2 * F + j], b = h13[i * 2 * F + F + j];
      out[i * F + j] = a * sigmoid(a) * b;
    }
}

// dh1 = dout h3 s (1 + a (1 - s)),  dh3 = dout a s,  s = sigmoid(a); dh13 (=)
void swiglu_backward(Vec& dh13, const Vec& dout, const Vec& h13, int64_t N, int F) {
  dh13.assign(size_t(N * 2 * F), 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int j = 0; j < F; ++j) {
      const double a = h13[i * 2 * F + j], b = h13[i * 2 * F + F + j];
      const double s = sigmoid(a), g = dout[i * F + j];
      dh13[i * 2 * F + j] = g * b * s * (1.0 + a * (1.0 - s));
      dh13[i * 2 * F + F + j] = g * a * s;
    }
}

double global_norm(const Vec& g) {
  double sum = 0;
  for (double x : g) sum += x * x;
  return std::sqrt(sum);
}

// torch.optim.AdamW with clip_grad_norm_ folded in (backend.h).
void adamw(Vec& params, const Vec& grads, Vec& m, Vec& v, const AdamWHyperRef& hyper,
           double grad_norm) {
  const double scale = (hyper.max_norm > 0 && grad_norm > hyper.max_norm)
                           ? hyper.max_norm / (grad_norm + 1e-6)
                           : 1.0;
  const double bias1 = 1.0 - std::pow(hyper.beta1, double(hyper.step));
  const double bias2 = 1.0 - std::pow(hyper.beta2, double(hyper.step));
  for (size_t i = 0; i < params.size(); ++i) {
    const double g = grads[i] * scale;
    params[i] -= hyper.lr * hyper.weight_decay * params[i];
    m[i] = hyper.beta1 * m[i] + (1.0 - hyper.beta1) * g;
    v[i] = hyper.beta2 * v[i] + (1.0 - hyper.beta2) * g * g;
    params[i] -= hyper.lr * (m[i] / bias1) / (std::sqrt(v[i] / bias2) + hyper.eps);
  }
}

}  // namespace kiln::ref
