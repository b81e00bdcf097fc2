#include "report/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace kiln {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The smallest 1-2-5 step (1, 2 or 5 times a power of ten) that is at
// least span / count, so an axis gets at most about `count` ticks.
double nice_step(double span, int count) {
  const double raw = span / std::max(1, count);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double r = raw / magnitude;
  const double m = r <= 1 + 1e-9 ? 1 : r <= 2 + 1e-9 ? 2 : r <= 5 + 1e-9 ? 5 : 10;
  return m * magnitude;
}

// Braille cell dots: column dx in {0,1}, row dy in {0..3} -> bit of U+2800+bits.
// Dots 1-3 run down the left column, 4-6 down the right, 7 and 8 are the bottom row.
constexpr uint8_t kBrailleBit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

}  // namespace

Axis::Axis(double lo, double hi, bool log_scale) : lo_(lo), hi_(hi), log_(log_scale) {
  valid_ = std::isfinite(lo) && std::isfinite(hi) && hi > lo && (!log_scale || lo > 0);
}

Axis Axis::fit(const std::vector<const std::vector<double>*>& values, bool log_scale,
               bool include_zero) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto* v : values)
    for (double x : *v)
      if (std::isfinite(x) && (!log_scale || x > 0)) {
        lo = std::min(lo, x);
        hi = std::max(hi, x);
      }
  if (!(lo <= hi)) return Axis();
  if (include_zero && !log_scale) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  if (hi == lo) {  // a flat series (or a single point): give it room around its value
    if (log_scale) {
      lo /= 2, hi *= 2;
    } else {
      const double pad = lo != 0 ? std::fabs(lo) * 0.05 : 1.0;
      lo -= pad, hi += pad;
    }
  }
  return Axis(lo, hi, log_scale);
}

double Axis::unit(double value) const {
  if (!valid_ || !std::isfinite(value)) return kNaN;
  if (log_) {
    if (value <= 0) return kNaN;
    return (std::log10(value) - std::log10(lo_)) / (std::log10(hi_) - std::log10(lo_));
  }
  return (value - lo_) / (hi_ - lo_);
}

std::vector<double> Axis::ticks(int count) const {
  std::vector<double> out;
  if (!valid_) return out;
  if (log_) {
    const int first = int(std::ceil(std::log10(lo_) - 1e-9)),
              last = int(std::floor(std::log10(hi_) + 1e-9));
    const int decades = last - first + 1;
    // Few decades in view: add 2x and 5x so the axis still has labels.
    const bool fill = decades < std::max(2, count / 2);
    for (int e = first - 1; e <= last; ++e)
      for (double m : {1.0, 2.0, 5.0}) {
        if (m != 1.0 && !fill) continue;
        const double v = m * std::pow(10.0, e);
        if (v >= lo_ * (1 - 1e-9) && v <= hi_ * (1 + 1e-9)) out.push_back(v);
      }
    return out;
  }
  const double step = nice_step(hi_ - lo_, count);
  for (double v = std::ceil(lo_ / step - 1e-9) * step; v <= hi_ + step * 1e-9; v += step)
    out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return out;
}

std::string tick_label(double value) {
  char buf[32];
  const double a = std::fabs(value);
  if (a == 0) return "0";
  auto trimmed = [&](double v, const char* suffix) {
    std::snprintf(buf, sizeof(buf), "%.2f", v);
    std::string s = buf;
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    return s + suffix;
  };
  if (a >= 1e9) return trimmed(value / 1e9, "G");
  if (a >= 1e6) return trimmed(value / 1e6, "M");
  if (a >= 1e4) return trimmed(value / 1e3, "k");
  if (a >= 1e-2) return trimmed(value, "");
  if (a >= 1e-3) {
    std::snprintf(buf, sizeof(buf), "%.4f", value);
    std::string s = buf;
    while (s.back() == '0') s.pop_back();
    return s;
  }
  std::snprintf(buf, sizeof(buf), "%.0e", value);
  return buf;
}

Series downsample(const Series& s, size_t max_points) {
  const size_t n = std::min(s.x.size(), s.y.size());
  if (n <= max_points || max_points == 0) return s;
  Series out = s;
  out.x.assign(max_points, kNaN);
  out.y.assign(max_points, kNaN);
  for (size_t b = 0; b < max_points; ++b) {
    const size_t begin = b * n / max_points, end = (b + 1) * n / max_points;
    double sx = 0, sy = 0;
    size_t k = 0;
    for (size_t i = begin; i < end; ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) sx += s.x[i], sy += s.y[i], ++k;
    if (k > 0) out.x[b] = sx / double(k), out.y[b] = sy / double(k);
  }
  return out;
}

std::vector<double> moving_average(const std::vector<double>& y, size_t half) {
  const size_t n = y.size();
  std::vector<double> sum(n + 1, 0.0), count(n + 1, 0.0);  // prefix sums of finite values
  for (size_t i = 0; i < n; ++i) {
    const bool ok = std::isfinite(y[i]);
    sum[i + 1] = sum[i] + (ok ? y[i] : 0.0);
    count[i + 1] = count[i] + (ok ? 1.0 : 0.0);
  }
  std::vector<double> out(n, kNaN);
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(y[i])) continue;
    // The window shrinks symmetrically near the ends, so a sloped curve's
    // first and last points are not pulled towards the middle.
    const size_t h = std::min({half, i, n - 1 - i});
    const size_t lo = i - h, hi = i + h + 1;
    out[i] = (sum[hi] - sum[lo]) / (count[hi] - count[lo]);
  }
  return out;
}

DotCanvas::DotCanvas(int cols, int rows, bool braille)
    : cols_(std::max(cols, 0)),
      rows_(std::max(rows, 0)),
      braille_(braille),
      bits_(size_t(cols_) * rows_, 0),
      color_(size_t(cols_) * rows_, -1) {}

void DotCanvas::set(int x, int y, int color) {
  if (x < 0 || y < 0 || x >= dots_x() || y >= dots_y()) return;
  const int per_x = braille_ ? 2 : 1, per_y = braille_ ? 4 : 1;
  const size_t cell = size_t(y / per_y) * cols_ + x / per_x;
  bits_[cell] |= braille_ ? kBrailleBit[y % 4][x % 2] : 1;
  color_[cell] = color;
}

void DotCanvas::line(int x0, int y0, int x1, int y1, int color) {
  // Bresenham over the larger delta; endpoints far outside are clipped first
  // so a wild value cannot make us walk millions of dots.
  const int limit = 4 * (dots_x() + dots_y()) + 16;
  auto clampi = [&](int v) { return std::clamp(v, -limit, limit); };
  x0 = clampi(x0), y0 = clampi(y0), x1 = clampi(x1), y1 = clampi(y1);
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    set(x0, y0, color);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

void DotCanvas::plot(const Series& s, const Axis& x_axis, const Axis& y_axis) {
  const int w = dots_x() - 1, h = dots_y() - 1;
  bool have_prev = false;
  int px = 0, py = 0;
  const size_t n = std::min(s.x.size(), s.y.size());
  for (size_t i = 0; i < n; ++i) {
    const double ux = x_axis.unit(s.x[i]), uy = y_axis.unit(s.y[i]);
    if (!std::isfinite(ux) || !std::isfinite(uy)) {
      have_prev = false;  // a gap
      continue;
    }
    const int x = int(std::lround(std::clamp(ux, -2.0, 3.0) * w));
    const int y = int(std::lround((1 - std::clamp(uy, -2.0, 3.0)) * h));
    if (have_prev && !s.markers)
      line(px, py, x, y, s.color);
    else
      set(x, y, s.color);
    if (s.markers) {  // a small cross makes sparse eval points visible
      set(x - 1, y, s.color), set(x + 1, y, s.color), set(x, y - 1, s.color),
          set(x, y + 1, s.color);
    }
    px = x, py = y, have_prev = true;
  }
}

ChartColor chart_color(int index) {
  // Blue, orange, green, red-purple, sky, vermillion, yellow, grey (Okabe-Ito order).
  static constexpr ChartColor kPalette[] = {{0, 114, 178},   {230, 159, 0},  {0, 158, 115},
                                            {204, 121, 167}, {86, 180, 233}, {213, 94, 0},
                                            {240, 228, 66},  {100, 100, 100}};
  return kPalette[size_t(index < 0 ? -index : index) % std::size(kPalette)];
}

std::string chart_color_hex(int index, bool faint) {
  ChartColor c = chart_color(index);
  if (faint) {  // 35% of the colour over white
    auto mix = [](uint8_t v) { return uint8_t(std::lround(0.35 * v + 0.65 * 255)); };
    c = {mix(c.r), mix(c.g), mix(c.b)};
  }
  char buf[8];
  std::snprintf(buf, sizeof(buf), "#%02x%02x%02x", c.r, c.g, c.b);
  return buf;
}

void chart_axes(const ChartSpec& spec, Axis* x_axis, Axis* y_axis) {
  std::vector<const std::vector<double>*> xs, ys;
  for (const auto& s : spec.series) xs.push_back(&s.x), ys.push_back(&s.y);
  *x_axis = Axis::fit(xs, spec.log_x, !spec.log_x);
  *y_axis = Axis::fit(ys, spec.log_y, spec.y_from_zero);
}

char32_t DotCanvas::glyph(int col, int row) const {
  const uint8_t b = bits_[size_t(row) * cols_ + col];
  if (!b) return U' ';
  return braille_ ? char32_t(0x2800 + b) : U'*';
}

}  // namespace kiln
