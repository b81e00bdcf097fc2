#include "reference/compare.h"

#include <cmath>

#include "core/rng.h"

namespace kiln::ref {

double unit_roundoff(DType dtype) { return dtype == DType::f32 ? std::ldexp(1.0, -24) : std::ldexp(1.0, -8); }

double normalized_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, norm = 0;
  const size_t n = std::min(got.size(), want.size());
  for (size_t i = 0; i < n; ++i) {
    const double d = double(got[i]) - want[i];
    if (!std::isfinite(double(got[i]))) return INFINITY;
    diff += d * d;
    norm += want[i] * want[i];
  }
  if (got.size() != want.size()) return INFINITY;
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-30);
}

double max_abs_error(const std::vector<float>& got, const std::vector<double>& want) {
  if (got.size() != want.size()) return INFINITY;
  double m = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - want[i]);
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

double derived_tolerance(DType dtype, double depth, double k) { return k * depth * unit_roundoff(dtype); }

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

std::vector<float> to_float(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = float(v[i]);
  return out;
}

std::vector<double> round_to_bf16(const std::vector<double>& v) {
  std::vector<double> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = bf16_to_float(float_to_bf16(float(v[i])));
  return out;
}

std::vector<double> random_vector(int64_t n, uint64_t seed, double scale) {
  Rng rng(seed, 7);
  std::vector<double> v(n);
  for (auto& x : v) x = scale * (2.0 * rng.uniform_double() - 1.0);
  return v;
}

}  // namespace kiln::ref
