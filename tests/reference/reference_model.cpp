// The fp64 whole-model oracle: see reference_model.h for the math.
// Deliberately plain: every op is a loop over explicit indices, every activation
// the backward needs is stored, the attention probabilities are materialised.
#include "reference/reference_model.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.h"

namespace kiln::ref {
namespace {

using Vec = std::vector<double>;

// Sizes of one call, named as in the rest of Kiln.
struct Dims {
  int B, T, C, H, Hkv, D, F, V, L;
  int64_t N;  // B * T rows
  int QKV;    // (H + 2*Hkv) * D, width of the packed qkv row
  int HD;     // H * D
};

Dims dims_of(const ModelConfig& c, int B, int T) {
  Dims d;
  d.B = B;
  d.T = T;
  d.C = c.dim;
  d.H = c.n_heads;
  d.Hkv = c.n_kv_heads;
  d.D = c.head_dim;
  d.F = c.hidden_dim;
  d.V = c.vocab_size;
  d.L = c.n_layers;
  d.N = int64_t(B) * T;
  d.QKV = c.qkv_dim();
  d.HD = c.q_dim();
  return d;
}

// Everything the backward needs from one layer's forward.
struct LayerActs {
  Vec x_in;     // [N, C]   residual stream entering the layer
  Vec rstd1;    // [N]
  Vec xn1;      // [N, C]   rmsnorm(x_in) * attn_norm
  Vec qkv_pre;  // [N, QKV] xn1 Wqkv^T + bqkv (qk_norm only: the norms' input)
  Vec rstd_qk;  // [N, H + Hkv] per-head rstd of q and k (qk_norm only)
  Vec qkv;      // [N, QKV] after the q/k norms and RoPE on q and k
  Vec probs;    // [B, H, T, T] causal softmax rows (0 above the diagonal)
  Vec att;      // [N, H*D] attention output, before o_proj
  Vec x_mid;    // [N, C]   x_in + att Wo^T
  Vec rstd2;    // [N]
  Vec xn2;      // [N, C]   rmsnorm(x_mid) * ffn_norm
  Vec h13;      // [N, 2F]  [h1 | h3] per row
  Vec g;        // [N, F]   silu(h1) * h3
};

struct Acts {
  std::vector<LayerActs> layers;
  Vec x_out;   // [N, C] residual stream after the last layer
  Vec rstd_f;  // [N]
  Vec xf;      // [N, C] final rmsnorm output
  Vec logits;  // [N, V]
};

double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }
double silu(double a) { return a * sigmoid(a); }
// d silu / da = sig(a) + a sig(a) (1 - sig(a))
double silu_grad(double a) {
  const double s = sigmoid(a);
  return s * (1.0 + a * (1.0 - s));
}

// y[N, out] (=) x[N, in] W^T, W [out, in] row-major.
void linear_forward(Vec& y, const Vec& x, const double* W, int64_t N, int in, int out) {
  y.assign(N * out, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int o = 0; o < out; ++o) {
      double s = 0;
      for (int k = 0; k < in; ++k) s += x[n * in + k] * W[int64_t(o) * in + k];
      y[n * out + o] = s;
    }
}

// Backward of y = x W^T: dx[N, in] (+=) dy W, dW[out, in] (+=) dy^T x.
void linear_backward(Vec& dx, double* dW, const Vec& dy, const Vec& x, const double* W, int64_t N,
                     int in, int out) {
  for (int64_t n = 0; n < N; ++n)
    for (int o = 0; o < out; ++o) {
      const double g = dy[n * out + o];
      for (int k = 0; k < in; ++k) {
        dx[n * in + k] += g * W[int64_t(o) * in + k];
        dW[int64_t(o) * in + k] += g * x[n * in + k];
      }
    }
}

// out[N, C] (=) x * rstd * w, rstd[N] (=) 1 / sqrt(mean(x^2) + eps)
void rmsnorm_forward(Vec& out, Vec& rstd, const Vec& x, const double* w, int64_t N, int C,
                     double eps) {
  out.assign(N * C, 0.0);
  rstd.assign(N, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0;
    for (int j = 0; j < C; ++j) ss += x[n * C + j] * x[n * C + j];
    const double r = 1.0 / std::sqrt(ss / C + eps);
    rstd[n] = r;
    for (int j = 0; j < C; ++j) out[n * C + j] = x[n * C + j] * r * w[j];
  }
}

// y_j = x_j r w_j with r = (sum_k x_k^2 / C + eps)^(-1/2), so d r / d x_k = -r^3 x_k / C:
//   dx_k (+=) r w_k dy_k - x_k r^3 / C * sum_j dy_j w_j x_j
//   dw_j (+=) dy_j x_j r
void rmsnorm_backward(Vec& dx, double* dw, const Vec& dy, const Vec& x, const double* w,
                      const Vec& rstd, int64_t N, int C) {
  for (int64_t n = 0; n < N; ++n) {
    const double r = rstd[n];
    double dot = 0;
    for (int j = 0; j < C; ++j) dot += dy[n * C + j] * w[j] * x[n * C + j];
    for (int j = 0; j < C; ++j) {
      dx[n * C + j] += r * w[j] * dy[n * C + j] - x[n * C + j] * r * r * r / C * dot;
      dw[j] += dy[n * C + j] * x[n * C + j] * r;
    }
  }
}

// Rotate the q and k heads (the first H + Hkv heads of each packed row) of
// position t by angle t * theta^(-2i/D) on the pair (i, i + D/2). sign = +1 is the
// forward rotation; sign = -1 the inverse (= transpose), which is the backward.
// With llama3 rope_scaling the frequency is rescaled by its wavelength 2 pi / f
// against the original context O: f / factor beyond O / low_freq_factor, f below
// O / high_freq_factor, linear in O / wavelength between (Llama 3's recipe).
double scaled_frequency(const ModelConfig& c, int i, int D) {
  const double f = std::pow(c.rope_theta, -2.0 * i / D);
  if (!c.has_rope_scaling()) return f;
  const auto& r = c.rope_scaling;
  const double ratio = r.original_max_position_embeddings * f / (2 * M_PI);  // O / wavelength
  if (ratio > r.high_freq_factor) return f;
  if (ratio < r.low_freq_factor) return f / r.factor;
  const double smooth = (ratio - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
  return f * (smooth + (1 - smooth) / r.factor);
}

void rope_apply(Vec& qkv, const Dims& d, const ModelConfig& c, double sign) {
  const int half = d.D / 2;
  for (int b = 0; b < d.B; ++b)
    for (int t = 0; t < d.T; ++t) {
      double* row = &qkv[(int64_t(b) * d.T + t) * d.QKV];
      for (int head = 0; head < d.H + d.Hkv; ++head) {
        double* x = row + int64_t(head) * d.D;
        for (int i = 0; i < half; ++i) {
          const double angle = t * scaled_frequency(c, i, d.D);
          const double c = std::cos(angle), s = sign * std::sin(angle);
          const double a = x[i], bb = x[i + half];
          x[i] = a * c - bb * s;
          x[i + half] = bb * c + a * s;
        }
      }
    }
}

// Offsets inside one packed qkv row of query head h, key head g, value head g.
int64_t q_off(const Dims& d, int h) { return int64_t(h) * d.D; }
int64_t k_off(const Dims& d, int g) { return int64_t(d.H + g) * d.D; }
int64_t v_off(const Dims& d, int g) { return int64_t(d.H + d.Hkv + g) * d.D; }

// att[N, H*D] (=) softmax_j<=i(q_i . k_j / sqrt(D)) v_j per head; probs kept.
void attention_forward(Vec& att, Vec& probs, const Vec& qkv, const Dims& d) {
  att.assign(d.N * d.HD, 0.0);
  probs.assign(int64_t(d.B) * d.H * d.T * d.T, 0.0);
  const double scale = 1.0 / std::sqrt(double(d.D));
  const int group = d.H / d.Hkv;
  Vec s(d.T);
  for (int b = 0; b < d.B; ++b)
    for (int h = 0; h < d.H; ++h) {
      const int g = h / group;
      for (int i = 0; i < d.T; ++i) {
        const double* q = &qkv[(int64_t(b) * d.T + i) * d.QKV + q_off(d, h)];
        double mx = -INFINITY;
        for (int j = 0; j <= i; ++j) {
          const double* k = &qkv[(int64_t(b) * d.T + j) * d.QKV + k_off(d, g)];
          double dot = 0;
          for (int e = 0; e < d.D; ++e) dot += q[e] * k[e];
          s[j] = dot * scale;
          mx = std::max(mx, s[j]);
        }
        double sum = 0;
        for (int j = 0; j <= i; ++j) sum += std::exp(s[j] - mx);
        double* p = &probs[((int64_t(b) * d.H + h) * d.T + i) * d.T];
        double* out = &att[(int64_t(b) * d.T + i) * d.HD + int64_t(h) * d.D];
        for (int j = 0; j <= i; ++j) {
          p[j] = std::exp(s[j] - mx) / sum;
          const double* v = &qkv[(int64_t(b) * d.T + j) * d.QKV + v_off(d, g)];
          for (int e = 0; e < d.D; ++e) out[e] += p[j] * v[e];
        }
      }
    }
}

// With out_i = sum_j p_ij v_j and p_i = softmax(s_i), s_ij = scale q_i . k_j:
//   dp_ij = dout_i . v_j;  dv_j (+=) p_ij dout_i
//   ds_ij = p_ij (dp_ij - sum_k p_ik dp_ik)
//   dq_i (+=) scale ds_ij k_j;  dk_j (+=) scale ds_ij q_i
// dqkv[N, QKV] must start at zero; kv heads shared by a group sum their parts.
void attention_backward(Vec& dqkv, const Vec& datt, const Vec& qkv, const Vec& probs,
                        const Dims& d) {
  const double scale = 1.0 / std::sqrt(double(d.D));
  const int group = d.H / d.Hkv;
  Vec dp(d.T);
  for (int b = 0; b < d.B; ++b)
    for (int h = 0; h < d.H; ++h) {
      const int g = h / group;
      for (int i = 0; i < d.T; ++i) {
        const int64_t row_i = (int64_t(b) * d.T + i) * d.QKV;
        const double* dout = &datt[(int64_t(b) * d.T + i) * d.HD + int64_t(h) * d.D];
        const double* p = &probs[((int64_t(b) * d.H + h) * d.T + i) * d.T];
        double pdp = 0;
        for (int j = 0; j <= i; ++j) {
          const int64_t row_j = (int64_t(b) * d.T + j) * d.QKV;
          double dot = 0;
          for (int e = 0; e < d.D; ++e) {
            dot += dout[e] * qkv[row_j + v_off(d, g) + e];
            dqkv[row_j + v_off(d, g) + e] += p[j] * dout[e];
          }
          dp[j] = dot;
          pdp += p[j] * dot;
        }
        for (int j = 0; j <= i; ++j) {
          const int64_t row_j = (int64_t(b) * d.T + j) * d.QKV;
          const double ds = p[j] * (dp[j] - pdp) * scale;
          for (int e = 0; e < d.D; ++e) {
            dqkv[row_i + q_off(d, h) + e] += ds * qkv[row_j + k_off(d, g) + e];
            dqkv[row_j + k_off(d, g) + e] += ds * qkv[row_i + q_off(d, h) + e];
          }
        }
      }
    }
}

// The Qwen extras, located by their Hugging Face names (not by ParamLayout's
// offsets): q_proj/k_proj/v_proj biases and the q_norm/k_norm weights of layer l.
// Returns the tensor's offset in the flat buffer.
int64_t named(const RefModel& m, int l, const char* tensor) {
  const std::string name = "model.layers." + std::to_string(l) + ".self_attn." + tensor;
  const ParamInfo* p = m.layout.find(name);
  if (p == nullptr) fail_input("reference model", "missing tensor " + name);
  return p->offset;
}

// qkv[n, :] += q_bias | k_bias | v_bias
void add_qkv_bias(Vec& qkv, const RefModel& m, int l, const Dims& d) {
  const double* P = m.params.data();
  const double* bq = P + named(m, l, "q_proj.bias");
  const double* bk = P + named(m, l, "k_proj.bias");
  const double* bv = P + named(m, l, "v_proj.bias");
  const int KV = d.Hkv * d.D;
  for (int64_t n = 0; n < d.N; ++n) {
    double* row = &qkv[n * d.QKV];
    for (int j = 0; j < d.HD; ++j) row[j] += bq[j];
    for (int j = 0; j < KV; ++j) row[d.HD + j] += bk[j];
    for (int j = 0; j < KV; ++j) row[d.HD + KV + j] += bv[j];
  }
}

// dq_bias, dk_bias, dv_bias (+=) the column sums of their parts of dqkv.
void qkv_bias_backward(double* G, const Vec& dqkv, const RefModel& m, int l, const Dims& d) {
  double* gq = G + named(m, l, "q_proj.bias");
  double* gk = G + named(m, l, "k_proj.bias");
  double* gv = G + named(m, l, "v_proj.bias");
  const int KV = d.Hkv * d.D;
  for (int64_t n = 0; n < d.N; ++n) {
    const double* row = &dqkv[n * d.QKV];
    for (int j = 0; j < d.HD; ++j) gq[j] += row[j];
    for (int j = 0; j < KV; ++j) gk[j] += row[d.HD + j];
    for (int j = 0; j < KV; ++j) gv[j] += row[d.HD + KV + j];
  }
}

// Per head of q (weight wq[D]) and of k (wk[D]), in place on qkv:
//   x <- x r w,  r = 1 / sqrt(sum_e x_e^2 / D + eps);  rstd[n, head] = r
void head_norm_forward(Vec& qkv, Vec& rstd, const double* wq, const double* wk, const Dims& d,
                       double eps) {
  rstd.assign(d.N * (d.H + d.Hkv), 0.0);
  for (int64_t n = 0; n < d.N; ++n)
    for (int head = 0; head < d.H + d.Hkv; ++head) {
      double* x = &qkv[n * d.QKV + int64_t(head) * d.D];
      const double* w = head < d.H ? wq : wk;
      double ss = 0;
      for (int e = 0; e < d.D; ++e) ss += x[e] * x[e];
      const double r = 1.0 / std::sqrt(ss / d.D + eps);
      rstd[n * (d.H + d.Hkv) + head] = r;
      for (int e = 0; e < d.D; ++e) x[e] = x[e] * r * w[e];
    }
}

// The rmsnorm backward per head, dy -> dx in place in dqkv; gw (+=) dy x r.
void head_norm_backward(Vec& dqkv, double* gq, double* gk, const Vec& x_all, const Vec& rstd,
                        const double* wq, const double* wk, const Dims& d) {
  for (int64_t n = 0; n < d.N; ++n)
    for (int head = 0; head < d.H + d.Hkv; ++head) {
      const int64_t at = n * d.QKV + int64_t(head) * d.D;
      double* dy = &dqkv[at];
      const double* x = &x_all[at];
      const double* w = head < d.H ? wq : wk;
      double* gw = head < d.H ? gq : gk;
      const double r = rstd[n * (d.H + d.Hkv) + head];
      double dot = 0;
      for (int e = 0; e < d.D; ++e) dot += dy[e] * w[e] * x[e];
      for (int e = 0; e < d.D; ++e) {
        gw[e] += dy[e] * x[e] * r;
        dy[e] = r * w[e] * dy[e] - x[e] * r * r * r / d.D * dot;
      }
    }
}

void check_inputs(const RefModel& m, const std::vector<int32_t>& tokens,
                  const std::vector<int32_t>* targets, int B, int T) {
  const char* where = "reference model";
  if (B <= 0 || T <= 0)
    fail_input(where, "B and T must be positive", "> 0",
               std::to_string(B) + "x" + std::to_string(T));
  const size_t N = size_t(B) * T;
  if (m.params.size() != size_t(m.layout.total()))
    fail_input(where, "params size", std::to_string(m.layout.total()),
               std::to_string(m.params.size()));
  if (tokens.size() != N)
    fail_input(where, "tokens size", std::to_string(N), std::to_string(tokens.size()));
  if (targets && targets->size() != N)
    fail_input(where, "targets size", std::to_string(N), std::to_string(targets->size()));
  const int V = m.config.vocab_size;
  for (size_t i = 0; i < N; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V)
      fail_input(where, "token id out of range", "[0, " + std::to_string(V) + ")",
                 std::to_string(tokens[i]));
    if (targets && (*targets)[i] >= V)
      fail_input(where, "target id out of range", "< " + std::to_string(V),
                 std::to_string((*targets)[i]));
  }
}

Acts forward(const RefModel& m, const std::vector<int32_t>& tokens, const Dims& d) {
  const ModelConfig& c = m.config;
  const double* P = m.params.data();
  Acts a;
  a.layers.resize(d.L);
  Vec x(d.N * d.C);  // [N, C] the residual stream
  for (int64_t n = 0; n < d.N; ++n)
    for (int j = 0; j < d.C; ++j)
      x[n * d.C + j] = P[m.layout.embedding() + int64_t(tokens[n]) * d.C + j];
  for (int l = 0; l < d.L; ++l) {
    const LayerOffsets& o = m.layout.layer(l);
    LayerActs& la = a.layers[l];
    la.x_in = x;
    rmsnorm_forward(la.xn1, la.rstd1, x, P + o.attn_norm, d.N, d.C, c.norm_eps);
    linear_forward(la.qkv, la.xn1, P + o.wqkv, d.N, d.C, d.QKV);
    if (c.qkv_bias) add_qkv_bias(la.qkv, m, l, d);  // qkv = xn Wqkv^T + bqkv
    if (c.qk_norm) {  // q, k <- RMSNorm_head(q) q_norm, RMSNorm_head(k) k_norm
      la.qkv_pre = la.qkv;
      head_norm_forward(la.qkv, la.rstd_qk, P + named(m, l, "q_norm.weight"),
                        P + named(m, l, "k_norm.weight"), d, c.norm_eps);
    }
    rope_apply(la.qkv, d, c, +1.0);
    attention_forward(la.att, la.probs, la.qkv, d);
    Vec y;
    linear_forward(y, la.att, P + o.wo, d.N, d.HD, d.C);
    for (int64_t i = 0; i < d.N * d.C; ++i) x[i] += y[i];
    la.x_mid = x;
    rmsnorm_forward(la.xn2, la.rstd2, x, P + o.ffn_norm, d.N, d.C, c.norm_eps);
    linear_forward(la.h13, la.xn2, P + o.w13, d.N, d.C, 2 * d.F);
    la.g.assign(d.N * d.F, 0.0);
    for (int64_t n = 0; n < d.N; ++n)
      for (int f = 0; f < d.F; ++f)  // g = silu(h1) * h3
        la.g[n * d.F + f] = silu(la.h13[n * 2 * d.F + f]) * la.h13[n * 2 * d.F + d.F + f];
    linear_forward(y, la.g, P + o.w2, d.N, d.F, d.C);
    for (int64_t i = 0; i < d.N * d.C; ++i) x[i] += y[i];
  }
  a.x_out = x;
  rmsnorm_forward(a.xf, a.rstd_f, x, P + m.layout.final_norm(), d.N, d.C, c.norm_eps);
  linear_forward(a.logits, a.xf, P + m.layout.classifier(), d.N, d.C, d.V);
  return a;
}

// Walks the layers in reverse, accumulating into the flat grads G (zeroed by the caller).
void backward(const RefModel& m, const std::vector<int32_t>& tokens, const Dims& d, const Acts& a,
              const Vec& dlogits, double* G) {
  const double* P = m.params.data();
  const ParamLayout& lay = m.layout;
  // logits = xf Wcls^T
  Vec dxf(d.N * d.C, 0.0);
  linear_backward(dxf, G + lay.classifier(), dlogits, a.xf, P + lay.classifier(), d.N, d.C, d.V);
  Vec dx(d.N * d.C, 0.0);  // [N, C] d loss / d residual stream
  rmsnorm_backward(dx, G + lay.final_norm(), dxf, a.x_out, P + lay.final_norm(), a.rstd_f, d.N,
                   d.C);
  for (int l = d.L - 1; l >= 0; --l) {
    const LayerOffsets& o = lay.layer(l);
    const LayerActs& la = a.layers[l];
    // x_out = x_mid + g W2^T: the residual passes dx on unchanged; the branch adds below.
    Vec dg(d.N * d.F, 0.0);
    linear_backward(dg, G + o.w2, dx, la.g, P + o.w2, d.N, d.F, d.C);
    Vec dh13(d.N * 2 * d.F, 0.0);
    for (int64_t n = 0; n < d.N; ++n)
      for (int f = 0; f < d.F; ++f) {
        const double h1 = la.h13[n * 2 * d.F + f], h3 = la.h13[n * 2 * d.F + d.F + f];
        const double gd = dg[n * d.F + f];
        dh13[n * 2 * d.F + f] = gd * h3 * silu_grad(h1);
        dh13[n * 2 * d.F + d.F + f] = gd * silu(h1);
      }
    Vec dxn2(d.N * d.C, 0.0);
    linear_backward(dxn2, G + o.w13, dh13, la.xn2, P + o.w13, d.N, d.C, 2 * d.F);
    rmsnorm_backward(dx, G + o.ffn_norm, dxn2, la.x_mid, P + o.ffn_norm, la.rstd2, d.N, d.C);
    // x_mid = x_in + att Wo^T
    Vec datt(d.N * d.HD, 0.0);
    linear_backward(datt, G + o.wo, dx, la.att, P + o.wo, d.N, d.HD, d.C);
    Vec dqkv(d.N * d.QKV, 0.0);
    attention_backward(dqkv, datt, la.qkv, la.probs, d);
    rope_apply(dqkv, d, m.config, -1.0);
    if (m.config.qk_norm) {
      const int64_t qn = named(m, l, "q_norm.weight"), kn = named(m, l, "k_norm.weight");
      head_norm_backward(dqkv, G + qn, G + kn, la.qkv_pre, la.rstd_qk, P + qn, P + kn, d);
    }
    if (m.config.qkv_bias) qkv_bias_backward(G, dqkv, m, l, d);
    Vec dxn1(d.N * d.C, 0.0);
    linear_backward(dxn1, G + o.wqkv, dqkv, la.xn1, P + o.wqkv, d.N, d.C, d.QKV);
    rmsnorm_backward(dx, G + o.attn_norm, dxn1, la.x_in, P + o.attn_norm, la.rstd1, d.N, d.C);
  }
  // x = embed[token]; with tied embeddings this adds to the classifier's part.
  for (int64_t n = 0; n < d.N; ++n)
    for (int j = 0; j < d.C; ++j)
      G[lay.embedding() + int64_t(tokens[n]) * d.C + j] += dx[n * d.C + j];
}

}  // namespace

RefModel make_zero_ref_model(const ModelConfig& config) {
  ParamLayout layout(config);
  std::vector<double> params(layout.total(), 0.0);
  return RefModel{config, std::move(layout), std::move(params)};
}

double ref_loss_and_grads(const RefModel& model, const std::vector<int32_t>& tokens,
                          const std::vector<int32_t>& targets, int B, int T,
                          std::vector<double>* grads) {
  check_inputs(model, tokens, &targets, B, T);
  const Dims d = dims_of(model.config, B, T);
  if (grads) grads->assign(model.layout.total(), 0.0);
  int64_t n_valid = 0;
  for (int32_t t : targets) n_valid += t >= 0;
  if (n_valid == 0) return 0.0;

  const Acts a = forward(model, tokens, d);
  // loss_i = lse_i - logit_i[target];  d loss / d logit_ij = (softmax_ij - [j == target]) / n_valid
  double loss = 0;
  Vec dlogits(d.N * d.V, 0.0);
  for (int64_t n = 0; n < d.N; ++n) {
    if (targets[n] < 0) continue;
    const double* z = &a.logits[n * d.V];
    const double mx = *std::max_element(z, z + d.V);
    double sum = 0;
    for (int v = 0; v < d.V; ++v) sum += std::exp(z[v] - mx);
    const double lse = mx + std::log(sum);
    loss += lse - z[targets[n]];
    for (int v = 0; v < d.V; ++v)
      dlogits[n * d.V + v] = (std::exp(z[v] - lse) - (v == targets[n] ? 1.0 : 0.0)) / n_valid;
  }
  loss /= double(n_valid);
  if (grads) backward(model, tokens, d, a, dlogits, grads->data());
  return loss;
}

std::vector<double> ref_logits(const RefModel& model, const std::vector<int32_t>& tokens, int B,
                               int T) {
  check_inputs(model, tokens, nullptr, B, T);
  return forward(model, tokens, dims_of(model.config, B, T)).logits;
}

}  // namespace kiln::ref
