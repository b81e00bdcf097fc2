#include "backend/profiling_backend.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "core/timer.h"

namespace kiln {

template <typename F>
void ProfilingBackend::timed(const std::string& op, double flops, F&& f) {
  inner_.synchronize();
  Timer t;
  f();
  inner_.synchronize();
  Entry& e = entries_[op];
  e.seconds += t.seconds();
  e.calls += 1;
  e.flops += flops;
}

std::string ProfilingBackend::table() const {
  std::vector<std::pair<std::string, Entry>> rows(entries_.begin(), entries_.end());
  std::sort(rows.begin(), rows.end(), [](auto& a, auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (auto& r : rows) total += r.second.seconds;
  std::string out;
  char line[160];
  std::snprintf(line, sizeof(line), "  %-28s %10s %7s %8s %9s\n", "op", "ms", "%", "calls", "GFLOPS");
  out += line;
  for (auto& [name, e] : rows) {
    std::snprintf(line, sizeof(line), "  %-28s %10.1f %6.1f%% %8lld %9.1f\n", name.c_str(), 1e3 * e.seconds,
                  total > 0 ? 100 * e.seconds / total : 0, (long long)e.calls,
                  e.seconds > 0 && e.flops > 0 ? e.flops / e.seconds / 1e9 : 0.0);
    out += line;
  }
  std::snprintf(line, sizeof(line), "  %-28s %10.1f\n", "total", 1e3 * total);
  out += line;
  return out;
}

void ProfilingBackend::upload(void* d, const void* s, size_t n) { timed("upload", 0, [&] { inner_.upload(d, s, n); }); }
void ProfilingBackend::download(void* d, const void* s, size_t n) { timed("download", 0, [&] { inner_.download(d, s, n); }); }
void ProfilingBackend::copy(void* d, const void* s, size_t n) { timed("copy", 0, [&] { inner_.copy(d, s, n); }); }
void ProfilingBackend::zero(void* d, size_t n) { timed("zero", 0, [&] { inner_.zero(d, n); }); }

void ProfilingBackend::matmul(float* C, const void* A, const void* B, DType dtype, int64_t M, int64_t N,
                              int64_t K, bool ta, bool tb, bool acc) {
  // Name GEMMs by role: forward (x W^T), input gradient (dY W), weight gradient (dY^T X).
  const char* role = ta ? "matmul dW" : tb ? "matmul fwd" : "matmul dX";
  timed(std::string(role) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K),
        2.0 * M * N * K, [&] { inner_.matmul(C, A, B, dtype, M, N, K, ta, tb, acc); });
}
void ProfilingBackend::linear_int8(float* y, const float* x, const uint8_t* wq, const float* ws,
                                   int64_t M, int64_t N, int64_t K, bool acc) {
  timed("linear int8 " + std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K),
        2.0 * M * N * K, [&] { inner_.linear_int8(y, x, wq, ws, M, N, K, acc); });
}
void ProfilingBackend::cast(void* d, DType dt, const float* s, int64_t n) { timed("cast", 0, [&] { inner_.cast(d, dt, s, n); }); }
void ProfilingBackend::add(float* o, const float* a, const float* b, int64_t n) { timed("add", 0, [&] { inner_.add(o, a, b, n); }); }
void ProfilingBackend::embedding_forward(float* o, const int32_t* t, const float* tb, int64_t N, int C) {
  timed("embedding fwd", 0, [&] { inner_.embedding_forward(o, t, tb, N, C); });
}
void ProfilingBackend::embedding_backward(float* d, const int32_t* t, const float* o, int64_t N, int C) {
  timed("embedding bwd", 0, [&] { inner_.embedding_backward(d, t, o, N, C); });
}
void ProfilingBackend::rmsnorm_forward(void* o, DType dt, float* r, const float* x, const float* w, int64_t N,
                                       int C, float eps) {
  timed("rmsnorm fwd", 0, [&] { inner_.rmsnorm_forward(o, dt, r, x, w, N, C, eps); });
}
void ProfilingBackend::rmsnorm_backward(float* dx, float* dw, const float* d, const float* x, const float* w,
                                        const float* r, int64_t N, int C) {
  timed("rmsnorm bwd", 0, [&] { inner_.rmsnorm_backward(dx, dw, d, x, w, r, N, C); });
}
void ProfilingBackend::bias_forward(float* y, const float* b, int64_t N, int C) {
  timed("bias fwd", 0, [&] { inner_.bias_forward(y, b, N, C); });
}
void ProfilingBackend::bias_backward(float* db, const float* dy, int64_t N, int C) {
  timed("bias bwd", 0, [&] { inner_.bias_backward(db, dy, N, C); });
}
void ProfilingBackend::head_rmsnorm_forward(float* o, float* r, const float* x, const float* qw,
                                            const float* kw, int64_t N, int H, int Hkv, int D,
                                            float eps) {
  timed("head rmsnorm fwd", 0,
        [&] { inner_.head_rmsnorm_forward(o, r, x, qw, kw, N, H, Hkv, D, eps); });
}
void ProfilingBackend::head_rmsnorm_backward(float* d, float* dqw, float* dkw, const float* x,
                                             const float* qw, const float* kw, const float* r,
                                             int64_t N, int H, int Hkv, int D) {
  timed("head rmsnorm bwd", 0,
        [&] { inner_.head_rmsnorm_backward(d, dqw, dkw, x, qw, kw, r, N, H, Hkv, D); });
}
void ProfilingBackend::rope_forward(float* q, int B, int T, int H, int Hkv, int D, const RopeParams& th,
                                    int p) {
  timed("rope fwd", 0, [&] { inner_.rope_forward(q, B, T, H, Hkv, D, th, p); });
}
void ProfilingBackend::rope_backward(float* q, int B, int T, int H, int Hkv, int D, const RopeParams& th,
                                     int p) {
  timed("rope bwd", 0, [&] { inner_.rope_backward(q, B, T, H, Hkv, D, th, p); });
}
void ProfilingBackend::rope_forward_at(float* q, int B, int T, int H, int Hkv, int D,
                                       const RopeParams& th, const int32_t* pos, int max_len) {
  timed("rope at", 0, [&] { inner_.rope_forward_at(q, B, T, H, Hkv, D, th, pos, max_len); });
}
// The positions may live in device memory, so no FLOP count is taken for the cached attention.
void ProfilingBackend::attention_decode(float* o, float* kc, float* vc, const float* q, int B, int T,
                                        int H, int Hkv, int D, const int32_t* pos, int max_len) {
  timed("attention decode", 0,
        [&] { inner_.attention_decode(o, kc, vc, q, B, T, H, Hkv, D, pos, max_len); });
}
void ProfilingBackend::attention_forward(float* o, float* l, const float* q, int B, int T, int H, int Hkv, int D) {
  timed("attention fwd", 2.0 * B * H * double(T) * T * D, [&] { inner_.attention_forward(o, l, q, B, T, H, Hkv, D); });
}
void ProfilingBackend::attention_backward(float* dq, const float* d, const float* q, const float* o,
                                          const float* l, int B, int T, int H, int Hkv, int D) {
  timed("attention bwd", 5.0 * B * H * double(T) * T * D,
        [&] { inner_.attention_backward(dq, d, q, o, l, B, T, H, Hkv, D); });
}
void ProfilingBackend::swiglu_forward(void* o, DType dt, const float* h, int64_t N, int F) {
  timed("swiglu fwd", 0, [&] { inner_.swiglu_forward(o, dt, h, N, F); });
}
void ProfilingBackend::swiglu_backward(float* d, const float* o, const float* h, int64_t N, int F) {
  timed("swiglu bwd", 0, [&] { inner_.swiglu_backward(d, o, h, N, F); });
}
void ProfilingBackend::classifier_forward_backward(float* l, float* dx, float* dW, const void* x, const void* W,
                                                   DType dt, const int32_t* t, int64_t N, int C, int V, float s) {
  timed(dx ? "classifier fwd+bwd" : "classifier fwd", (dx ? 6.0 : 2.0) * N * C * double(V),
        [&] { inner_.classifier_forward_backward(l, dx, dW, x, W, dt, t, N, C, V, s); });
}
void ProfilingBackend::global_norm(float* o, const float* g, int64_t n) {
  timed("global_norm", 0, [&] { inner_.global_norm(o, g, n); });
}
void ProfilingBackend::adamw(float* p, void* pc, DType dt, const float* g, float* m, float* v, int64_t n,
                             const AdamWHyper& h, const float* norm) {
  timed("adamw", 0, [&] { inner_.adamw(p, pc, dt, g, m, v, n, h, norm); });
}

}  // namespace kiln
