// What every Kiln plot shares, whatever it is drawn on (terminal cells, SVG,
// a PNG raster): series of (x, y) points, an axis mapping with "nice" tick
// values and an optional log scale, downsampling of long series, and the
// terminal canvas (braille dots, or one ASCII mark per cell).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

struct Series {
  std::string label;
  std::vector<double> x, y;  // non-finite values are gaps
  int color = 0;             // index into the palette of whatever draws it
  bool dashed = false;       // validation curves are dashed in SVG
  bool markers = false;      // few points (evals): draw dots as well
  bool faint = false;        // raw values drawn light behind a smoothed curve
};

// One chart for the file renderers (SVG in the HTML report, the PNG raster).
struct ChartSpec {
  std::string title, x_label, y_label;
  bool log_x = false, log_y = false;
  std::vector<Series> series;
  bool y_from_zero = false;  // rates and sizes: the axis starts at 0 so noise is not magnified
};

// Kiln's chart palette (colour-blind friendly), cycled by Series::color.
struct ChartColor {
  uint8_t r, g, b;
};
ChartColor chart_color(int index);
std::string chart_color_hex(int index, bool faint = false);

// Maps data values onto [0, 1] for one axis; log scale maps log10(value)
// and treats values <= 0 as missing.
class Axis {
 public:
  Axis() = default;
  Axis(double lo, double hi, bool log_scale);
  // The span of the finite values (positive ones on a log axis) of `values`
  // over every series, padded so a flat series stays visible.
  static Axis fit(const std::vector<const std::vector<double>*>& values, bool log_scale,
                  bool include_zero = false);
  bool valid() const { return valid_; }
  bool log_scale() const { return log_; }
  double lo() const { return lo_; }
  double hi() const { return hi_; }
  // Position in [0, 1] (outside for values off the axis); NaN when not mappable.
  double unit(double value) const;
  // About `count` round values inside [lo, hi] (1-2-5 steps; decades on a log axis).
  std::vector<double> ticks(int count) const;

 private:
  double lo_ = 0, hi_ = 1;
  bool log_ = false, valid_ = false;
};

// The axes every renderer of `spec` uses: data ranges of all its series.
void chart_axes(const ChartSpec& spec, Axis* x_axis, Axis* y_axis);

// Short tick label: "0", "250", "1.5k", "2M", "0.003", "3e-05", "1.25".
std::string tick_label(double value);

// Keeps long series cheap to draw: at most max_points points, each the mean
// of a bucket of consecutive points (x and y both averaged), so noise is
// smoothed the same way at every zoom.
Series downsample(const Series& s, size_t max_points);

// Centred moving average of y over i-half..i+half (windows shrink
// symmetrically at the ends; non-finite values are skipped and stay NaN): a trend without the lag
// an exponential average has, for plots drawn after the fact.
std::vector<double> moving_average(const std::vector<double>& y, size_t half);

// A terminal drawing surface of cols x rows character cells. In braille mode
// each cell holds a 2x4 grid of dots (U+2800 + bit pattern), so a 60x12 cell
// plot has 120x48 dots; in ASCII mode each cell is one dot drawn as a mark.
class DotCanvas {
 public:
  DotCanvas(int cols, int rows, bool braille);
  int cols() const { return cols_; }
  int rows() const { return rows_; }
  int dots_x() const { return cols_ * (braille_ ? 2 : 1); }
  int dots_y() const { return rows_ * (braille_ ? 4 : 1); }
  // Sets dot (x, y); y = 0 is the top row. Out-of-range dots are dropped.
  void set(int x, int y, int color);
  // A straight line of dots between two dot positions (Bresenham).
  void line(int x0, int y0, int x1, int y1, int color);
  // Draws a series through the axes (x: left to right, y: bottom to top).
  void plot(const Series& s, const Axis& x_axis, const Axis& y_axis);
  // The glyph of a cell (U+0020 when empty) and the colour of the last series drawn in it (-1:
  // none).
  char32_t glyph(int col, int row) const;
  int color(int col, int row) const { return color_[size_t(row) * cols_ + col]; }

 private:
  int cols_, rows_;
  bool braille_;
  std::vector<uint8_t> bits_;  // braille dot bits per cell
  std::vector<int> color_;
};

}  // namespace kiln
