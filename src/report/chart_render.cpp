#include "report/chart_render.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/pixel_font.h"

namespace kiln {
namespace {

constexpr size_t kMaxSvgPoints = 1500;  // per series: keeps a 100k-step run's report small
constexpr size_t kMaxMarkers = 300;

std::string coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}

// Plot rectangle inside a chart of the given size.
struct Frame {
  double left, top, width, height;
  double px(const Axis& a, double v) const { return left + a.unit(v) * width; }
  double py(const Axis& a, double v) const { return top + (1 - a.unit(v)) * height; }
};

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string svg_chart(const ChartSpec& spec, int W, int H, const std::string& id) {
  Axis xa, ya;
  chart_axes(spec, &xa, &ya);
  const Frame f{64, 34, W - 64.0 - 18, H - 34.0 - 46};
  std::string s = "<svg class=\"chart\" viewBox=\"0 0 " + std::to_string(W) + " " +
                  std::to_string(H) + "\" width=\"" + std::to_string(W) + "\" height=\"" +
                  std::to_string(H) + "\" role=\"img\" aria-label=\"" + html_escape(spec.title) +
                  "\">\n";
  s += "<title>" + html_escape(spec.title) + "</title>\n";
  s += "<rect width=\"" + std::to_string(W) + "\" height=\"" + std::to_string(H) +
       "\" fill=\"#ffffff\"/>\n";
  s += "<text x=\"" + coord(f.left) + "\" y=\"20\" class=\"title\">" + html_escape(spec.title) +
       "</text>\n";
  if (!xa.valid() || !ya.valid()) {
    s += "<text x=\"" + coord(f.left + f.width / 2) + "\" y=\"" + coord(f.top + f.height / 2) +
         "\" text-anchor=\"middle\" class=\"empty\">no data</text>\n</svg>\n";
    return s;
  }
  // Grid and tick labels.
  for (double t : ya.ticks(6)) {
    const double y = f.py(ya, t);
    s += "<line x1=\"" + coord(f.left) + "\" y1=\"" + coord(y) + "\" x2=\"" +
         coord(f.left + f.width) + "\" y2=\"" + coord(y) + "\" class=\"grid\"/>";
    s += "<text x=\"" + coord(f.left - 6) + "\" y=\"" + coord(y + 4) +
         "\" text-anchor=\"end\" class=\"tick\">" + html_escape(tick_label(t)) + "</text>\n";
  }
  for (double t : xa.ticks(std::max(3, W / 110))) {
    const double x = f.px(xa, t);
    s += "<line x1=\"" + coord(x) + "\" y1=\"" + coord(f.top) + "\" x2=\"" + coord(x) + "\" y2=\"" +
         coord(f.top + f.height) + "\" class=\"grid\"/>";
    s += "<text x=\"" + coord(x) + "\" y=\"" + coord(f.top + f.height + 16) +
         "\" text-anchor=\"middle\" class=\"tick\">" + html_escape(tick_label(t)) + "</text>\n";
  }
  s += "<rect x=\"" + coord(f.left) + "\" y=\"" + coord(f.top) + "\" width=\"" + coord(f.width) +
       "\" height=\"" + coord(f.height) + "\" class=\"frame\"/>\n";
  s += "<text x=\"" + coord(f.left + f.width / 2) + "\" y=\"" + std::to_string(H - 8) +
       "\" text-anchor=\"middle\" class=\"label\">" + html_escape(spec.x_label) + "</text>\n";
  s += "<text transform=\"translate(14 " + coord(f.top + f.height / 2) +
       ") rotate(-90)\" text-anchor=\"middle\" class=\"label\">" + html_escape(spec.y_label) +
       "</text>\n";
  // Series, clipped to the plot rectangle.
  const std::string clip = "clip-" + id;
  s += "<clipPath id=\"" + clip + "\"><rect x=\"" + coord(f.left) + "\" y=\"" + coord(f.top) +
       "\" width=\"" + coord(f.width) + "\" height=\"" + coord(f.height) +
       "\"/></clipPath>\n<g clip-path=\"url(#" + clip + ")\">\n";
  for (const Series& full : spec.series) {
    const Series ser = downsample(full, kMaxSvgPoints);
    std::string d;
    bool pen_down = false;
    size_t points = 0;
    for (size_t i = 0; i < std::min(ser.x.size(), ser.y.size()); ++i) {
      const double ux = xa.unit(ser.x[i]), uy = ya.unit(ser.y[i]);
      if (!std::isfinite(ux) || !std::isfinite(uy)) {
        pen_down = false;
        continue;
      }
      d += pen_down ? 'L' : 'M';
      d += coord(f.px(xa, ser.x[i]));
      d += ',';
      d += coord(f.py(ya, ser.y[i]));
      pen_down = true;
      ++points;
    }
    if (points == 0) continue;
    const std::string color = chart_color_hex(ser.color, ser.faint);
    if (points > 1 || !ser.markers)
      s += "<path d=\"" + d + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"" +
           (ser.faint ? "1" : "1.8") + "\"" + (ser.dashed ? " stroke-dasharray=\"6 4\"" : "") +
           " stroke-linejoin=\"round\"/>\n";
    if (ser.markers && points <= kMaxMarkers)
      for (size_t i = 0; i < std::min(ser.x.size(), ser.y.size()); ++i)
        if (std::isfinite(xa.unit(ser.x[i])) && std::isfinite(ya.unit(ser.y[i])))
          s += "<circle cx=\"" + coord(f.px(xa, ser.x[i])) + "\" cy=\"" +
               coord(f.py(ya, ser.y[i])) + "\" r=\"2.8\" fill=\"" + color + "\"/>";
    s += "\n";
  }
  s += "</g>\n</svg>\n";
  return s;
}

namespace {

Rgb to_rgb(int color_index, bool faint) {
  const ChartColor c = chart_color(color_index);
  if (!faint) return {c.r, c.g, c.b};
  auto mix = [](uint8_t v) { return uint8_t(std::lround(0.35 * v + 0.65 * 255)); };
  return {mix(c.r), mix(c.g), mix(c.b)};
}

// A line `thickness` pixels wide (Bresenham with a square stamp); `dash`
// > 0 draws dash pixels on, dash off, along the line.
void raster_line(RgbImage& img, double x0, double y0, double x1, double y1, Rgb c, int thickness,
                 int dash, int* dash_phase) {
  int ax = int(std::lround(x0)), ay = int(std::lround(y0));
  const int bx = int(std::lround(x1)), by = int(std::lround(y1));
  const int dx = std::abs(bx - ax), dy = -std::abs(by - ay), sx = ax < bx ? 1 : -1,
            sy = ay < by ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    const bool on = dash <= 0 || ((*dash_phase)++ / dash) % 2 == 0;
    if (on)
      for (int oy = 0; oy < thickness; ++oy)
        for (int ox = 0; ox < thickness; ++ox)
          img.set(ax + ox - thickness / 2, ay + oy - thickness / 2, c);
    if (ax == bx && ay == by) break;
    const int e2 = 2 * err;
    if (e2 >= dy) err += dy, ax += sx;
    if (e2 <= dx) err += dx, ay += sy;
  }
}

void fill_rect(RgbImage& img, int x, int y, int w, int h, Rgb c) {
  for (int r = y; r < y + h; ++r)
    for (int q = x; q < x + w; ++q) img.set(q, r, c);
}

}  // namespace

RgbImage raster_chart(const ChartSpec& spec, int W, int H) {
  const Rgb white{255, 255, 255}, ink{40, 40, 40}, grid{228, 230, 235}, soft{110, 110, 110};
  RgbImage img(W, H, white);
  Axis xa, ya;
  chart_axes(spec, &xa, &ya);
  const int font = 2;  // 10x14-pixel characters
  const Frame f{96, 56, W - 96.0 - 24, H - 56.0 - 64};
  draw_text(img, int(f.left), 16, spec.title, ink, 3);
  if (!xa.valid() || !ya.valid()) {
    draw_text(img, int(f.left + f.width / 2) - text_width("NO DATA", font) / 2,
              int(f.top + f.height / 2), "NO DATA", soft, font);
    return img;
  }
  for (double t : ya.ticks(6)) {
    const int y = int(std::lround(f.py(ya, t)));
    fill_rect(img, int(f.left), y, int(f.width), 1, grid);
    const std::string label = tick_label(t);
    draw_text(img, int(f.left) - 8 - text_width(label, font), y - 7, label, soft, font);
  }
  for (double t : xa.ticks(std::max(3, W / 140))) {
    const int x = int(std::lround(f.px(xa, t)));
    fill_rect(img, x, int(f.top), 1, int(f.height), grid);
    const std::string label = tick_label(t);
    draw_text(img, x - text_width(label, font) / 2, int(f.top + f.height) + 10, label, soft, font);
  }
  draw_text(img, int(f.left + f.width / 2) - text_width(spec.x_label, font) / 2, H - 26,
            spec.x_label, ink, font);
  // Frame.
  fill_rect(img, int(f.left), int(f.top), int(f.width) + 1, 1, soft);
  fill_rect(img, int(f.left), int(f.top + f.height), int(f.width) + 1, 1, soft);
  fill_rect(img, int(f.left), int(f.top), 1, int(f.height) + 1, soft);
  fill_rect(img, int(f.left + f.width), int(f.top), 1, int(f.height) + 1, soft);
  // Series: faint ones first so the smoothed curves stay on top.
  for (int pass = 0; pass < 2; ++pass)
    for (const Series& full : spec.series) {
      if (full.faint != (pass == 0)) continue;
      const Series ser = downsample(full, size_t(f.width));
      const Rgb c = to_rgb(ser.color, ser.faint);
      bool have_prev = false;
      double px = 0, py = 0;
      int phase = 0;
      for (size_t i = 0; i < std::min(ser.x.size(), ser.y.size()); ++i) {
        const double ux = xa.unit(ser.x[i]), uy = ya.unit(ser.y[i]);
        if (!std::isfinite(ux) || !std::isfinite(uy)) {
          have_prev = false;
          continue;
        }
        const double x = f.px(xa, ser.x[i]), y = f.py(ya, ser.y[i]);
        if (have_prev && !(ser.markers && ser.x.size() == 1))
          raster_line(img, px, py, x, y, c, ser.faint ? 1 : 2, ser.dashed ? 6 : 0, &phase);
        if (ser.markers) fill_rect(img, int(std::lround(x)) - 3, int(std::lround(y)) - 3, 7, 7, c);
        px = x, py = y, have_prev = true;
      }
    }
  // Legend: the non-faint series, top right inside the plot.
  int rows = 0, widest = 0;
  for (const Series& s : spec.series)
    if (!s.faint && !s.label.empty()) ++rows, widest = std::max(widest, text_width(s.label, font));
  if (rows > 0) {
    const int lw = widest + 48, lh = rows * 20 + 8;
    const int lx = int(f.left + f.width) - lw - 8, ly = int(f.top) + 8;
    fill_rect(img, lx, ly, lw, lh, white);
    int row = 0;
    for (const Series& s : spec.series) {
      if (s.faint || s.label.empty()) continue;
      const int y = ly + 6 + row * 20;
      int phase = 0;
      raster_line(img, lx + 6, y + 7, lx + 30, y + 7, to_rgb(s.color, false), 2, s.dashed ? 6 : 0,
                  &phase);
      draw_text(img, lx + 38, y, s.label, ink, font);
      ++row;
    }
  }
  return img;
}

}  // namespace kiln
