#include "report/dashboard.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>

#include "report/plot.h"

namespace kiln {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr uint8_t kRunColors[] = {kCyan, kYellow, kMagenta, kGreen, kBlue, kRed};
constexpr size_t kMaxOutputLines = 200;

uint8_t run_color(size_t i) { return kRunColors[i % std::size(kRunColors)]; }
uint8_t val_color(size_t i) { return uint8_t(run_color(i) + 8); }  // the bright variant

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  char buf[256];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  return buf;
}

// "12.3k", "4.56M": throughput and token counts.
std::string si(double v) {
  if (!std::isfinite(v)) return "-";
  const double a = std::fabs(v);
  if (a >= 1e9) return fmt("%.2fG", v / 1e9);
  if (a >= 1e6) return fmt("%.2fM", v / 1e6);
  if (a >= 1e4) return fmt("%.1fk", v / 1e3);
  return fmt("%.0f", v);
}

std::string num(const char* format, double v) { return std::isfinite(v) ? fmt(format, v) : "-"; }

// Mean of a field over the last `n` steps (finite values only).
template <typename Get>
double recent_mean(const std::vector<StepPoint>& steps, size_t n, Get get) {
  double sum = 0;
  size_t k = 0;
  for (size_t i = steps.size() > n ? steps.size() - n : 0; i < steps.size(); ++i) {
    const double v = get(steps[i]);
    if (std::isfinite(v)) sum += v, ++k;
  }
  return k ? sum / double(k) : kNaN;
}

// Bucket means of one step field against the step number, at most
// max_points of them, read straight from the records. A bucket averages at
// most 64 evenly spaced records, so a frame costs the same for a run of a
// thousand steps or of millions (the mean of 64 is as smooth as a terminal
// cell can show).
Series step_series(const std::vector<StepPoint>& steps, double StepPoint::*field,
                   size_t max_points) {
  Series out;
  const size_t n = steps.size(), buckets = std::min(n, std::max<size_t>(max_points, 1));
  out.x.reserve(buckets);
  out.y.reserve(buckets);
  for (size_t b = 0; b < buckets; ++b) {
    const size_t begin = b * n / buckets, end = (b + 1) * n / buckets;
    double sx = 0, sy = 0;
    size_t k = 0;
    const size_t stride = std::max<size_t>(1, (end - begin) / 64);
    for (size_t i = begin; i < end; i += stride) {
      const double v = steps[i].*field;
      if (std::isfinite(v)) sx += double(steps[i].step), sy += v, ++k;
    }
    out.x.push_back(k ? sx / double(k) : kNaN);
    out.y.push_back(k ? sy / double(k) : kNaN);
  }
  return out;
}

// Seconds left: steps to go times the recent wall-clock time per step (from
// the records' timestamps, so evals, samples and checkpoints count too);
// the steps' own compute time when timestamps are missing.
double eta_seconds(const RunMetrics& m) {
  const int64_t planned = m.planned_steps();
  if (planned <= 0 || m.steps.empty()) return kNaN;
  const StepPoint& last = m.steps.back();
  const StepPoint& first = m.steps[m.steps.size() > 50 ? m.steps.size() - 51 : 0];
  double per_step =
      last.step > first.step ? (last.time - first.time) / double(last.step - first.step) : kNaN;
  if (!(per_step > 0))
    per_step = recent_mean(m.steps, 50, [](const StepPoint& s) { return s.ms; }) / 1e3;
  return std::max<int64_t>(0, planned - last.step) * per_step;
}

double last_record_time(const RunMetrics& m) {
  double t = kNaN;
  auto later = [&](double v) {
    if (std::isfinite(v) && !(t >= v)) t = v;
  };
  if (!m.steps.empty()) later(m.steps.back().time);
  if (!m.evals.empty()) later(m.evals.back().time);
  if (!m.system.empty()) later(m.system.back().time);
  if (m.run.is_object() && m.run.contains("time") && m.run["time"].is_number())
    later(m.run["time"].get<double>());
  return t;
}

// A label column and a value, as one panel line.
void field(CellBuffer& out, int x, int y, int w, const std::string& label, const std::string& value,
           uint8_t color = kDefault, int label_w = 10) {
  out.text(x, y, label, kGrey, kNormal, std::min(label_w, w));
  if (w > label_w) out.text(x + label_w, y, value, color, kNormal, w - label_w);
}

}  // namespace

std::string format_duration_short(double s) {
  if (!std::isfinite(s) || s < 0) return "-";
  const long long t = (long long)std::llround(s);
  if (t >= 86400) return fmt("%lldd%02lldh", t / 86400, (t % 86400) / 3600);
  if (t >= 3600) return fmt("%lldh%02lldm", t / 3600, (t % 3600) / 60);
  if (t >= 60) return fmt("%lldm%02llds", t / 60, t % 60);
  return fmt("%llds", t);
}

std::string sparkline(const std::vector<double>& values, int cols, bool unicode) {
  if (cols <= 0) return "";
  Series s;
  for (size_t i = 0; i < values.size(); ++i)
    if (std::isfinite(values[i])) s.x.push_back(double(i)), s.y.push_back(values[i]);
  if (s.y.size() < 2) return "";
  s = downsample(s, size_t(cols));
  const Axis axis = Axis::fit({&s.y}, false);
  static const char32_t kBlocks[] = U"▁▂▃▄▅▆▇█";
  static const char kAscii[] = "_.-:=+*#";
  std::string out;
  for (double v : s.y) {
    const double u = axis.unit(v);
    const int level = std::isfinite(u) ? std::clamp(int(u * 7.999), 0, 7) : 0;
    if (unicode)
      append_utf8(out, kBlocks[level]);
    else
      out += kAscii[level];
  }
  return out;
}

Dashboard::Dashboard(const std::vector<std::string>& run_dirs, DashOptions options)
    : options_(options) {
  for (const auto& dir : run_dirs) runs_.push_back(std::make_unique<MetricsTail>(dir));
}

bool Dashboard::poll() {
  bool changed = false;
  for (auto& r : runs_) changed = r->poll() || changed;
  return changed;
}

void Dashboard::add_output_line(const std::string& line) {
  output_.push_back(line);
  if (output_.size() > kMaxOutputLines) output_.pop_front();
}

void Dashboard::render(CellBuffer& out, double now) const {
  out.clear();
  const int W = out.width(), H = out.height();
  if (W < 24 || H < 8) {
    out.text(0, 0, "kiln dash: window too small", kDefault, kBold);
    return;
  }
  draw_header(out, 0, W, now);
  const bool child = !child_status_.empty();
  if (W >= 80 && H >= 16) {
    // The bottom row of boxes is as tall as the sample needs, within limits.
    const int max_bottom = H >= 30 ? 8 : H >= 22 ? 6 : 5;
    int bottom_h = child ? max_bottom : std::clamp(sample_lines(W - 4) + 2, 3, max_bottom);
    const int top_h = H - 1 - bottom_h;
    const int side_w = std::clamp(W * 36 / 100, 30, 46);
    const int sys_h = std::clamp(top_h - 12, 5, 8);
    draw_loss(out, 0, 1, W - side_w, top_h);
    draw_training(out, W - side_w, 1, side_w, top_h - sys_h, now, true);
    draw_system(out, W - side_w, 1 + top_h - sys_h, side_w, sys_h, now);
    if (child) {
      draw_sample(out, 0, H - bottom_h, W / 2, bottom_h);
      draw_output(out, W / 2, H - bottom_h, W - W / 2, bottom_h);
    } else {
      draw_sample(out, 0, H - bottom_h, W, bottom_h);
    }
    return;
  }
  // Narrow or short: three lines of numbers, the plot, then one small box.
  const int numbers_h = 3;
  const int bottom_h = H >= 16 ? 4 : 3;
  draw_training(out, 0, 1, W, numbers_h, now, false);
  draw_loss(out, 0, 1 + numbers_h, W, H - 1 - numbers_h - bottom_h);
  const bool show_output = child && (runs_.empty() || run(focus_).samples.empty());
  if (show_output)
    draw_output(out, 0, H - bottom_h, W, bottom_h);
  else
    draw_sample(out, 0, H - bottom_h, W, bottom_h);
}

void Dashboard::draw_header(CellBuffer& out, int y, int w, double now) const {
  out.fill(0, y, w, 1, U' ', kDefault, kInverse);
  std::string left = " kiln dash";
  if (!runs_.empty()) {
    const RunMetrics& m = run(focus_);
    left += "  " + m.name;
    if (runs_.size() > 1) left += fmt(" [%zu/%zu]", focus_ + 1, runs_.size());
    const int64_t planned = m.planned_steps();
    if (!m.steps.empty()) {
      const int64_t step = m.steps.back().step;
      left += planned > 0 ? fmt("  step %lld/%lld (%.0f%%)", (long long)step, (long long)planned,
                                100.0 * double(step) / double(planned))
                          : fmt("  step %lld", (long long)step);
    }
    const double last = last_record_time(m);
    if (!m.report.is_null()) {
      left += "  finished";
    } else if (!tail_seen(focus_)) {
      left += "  waiting for metrics.jsonl";
    } else if (!m.steps.empty()) {
      left += "  ETA " + format_duration_short(eta_seconds(m));
      if (std::isfinite(last) && now - last > 60)
        left += "  (quiet for " + format_duration_short(now - last) + ")";
    }
  }
  if (!child_status_.empty()) left += "  | " + child_status_;
  const std::string keys = runs_.size() > 1 ? "q quit  l log-x  tab run " : "q quit  l log-x ";
  const int used = out.text(0, y, left, kDefault, kInverse | kBold, w);
  if (used + 2 + int(keys.size()) <= w) out.text(w - int(keys.size()), y, keys, kDefault, kInverse);
}

bool Dashboard::tail_seen(size_t i) const { return runs_[i]->file_seen(); }

void Dashboard::draw_loss(CellBuffer& out, int x, int y, int w, int h) const {
  const bool u = options_.unicode;
  out.box(x, y, w, h, options_.log_x ? "Loss (log step)" : "Loss", kDefault, u);
  const int ix = x + 1, iy = y + 1, iw = w - 2, ih = h - 2;
  if (iw < 12 || ih < 3) return;

  // Every run's train loss and, brighter and marked, its validation loss.
  std::vector<Series> series;
  bool any_val = false;
  for (size_t i = 0; i < runs_.size(); ++i) {
    const RunMetrics& m = run(i);
    Series train =
        step_series(m.steps, &StepPoint::loss, size_t(2 * iw));  // 2 braille dots per cell at most
    train.color = run_color(i);
    series.push_back(std::move(train));
    Series val;
    val.color = val_color(i);
    val.markers = true;
    for (const auto& e : m.evals) val.x.push_back(double(e.step)), val.y.push_back(e.val_loss);
    any_val = any_val || !val.x.empty();
    series.push_back(std::move(val));
  }
  std::vector<const std::vector<double>*> xs, ys;
  for (const auto& s : series) xs.push_back(&s.x), ys.push_back(&s.y);
  const Axis y_axis = Axis::fit(ys, false);
  Axis x_axis = Axis::fit(xs, options_.log_x, !options_.log_x);
  if (!y_axis.valid() || !x_axis.valid()) {
    out.text(ix + 2, iy + ih / 2, "waiting for the first step...", kGrey);
    return;
  }
  // Legend on the first inner row: each run's colour and latest loss.
  int lx = ix + 1;
  const int legend_rows = 1;
  for (size_t i = 0; i < runs_.size() && lx < ix + iw; ++i) {
    const RunMetrics& m = run(i);
    std::string entry =
        (u ? "━ " : "- ") + (runs_.size() > 1 ? m.name + " " : std::string("train "));
    entry += m.steps.empty() ? "-" : num("%.4f", m.steps.back().loss);
    lx += out.text(lx, iy, entry, run_color(i), kNormal, ix + iw - lx) + 2;
    if (!m.evals.empty() && lx < ix + iw)
      lx += out.text(lx, iy, (u ? "• val " : "+ val ") + num("%.4f", m.evals.back().val_loss),
                     val_color(i), kNormal, ix + iw - lx) +
            2;
  }
  (void)any_val;

  // Plot area: y labels on the left, x labels on the bottom row.
  const std::vector<double> yt = y_axis.ticks(std::max(2, (ih - 2) / 3));
  int label_w = 0;
  for (double t : yt) label_w = std::max(label_w, int(tick_label(t).size()));
  const int px = ix + label_w + 1, py = iy + legend_rows, pw = iw - label_w - 1,
            ph = ih - legend_rows - 1;
  if (pw < 4 || ph < 2) return;
  DotCanvas canvas(pw, ph, u);
  for (const auto& s : series) canvas.plot(downsample(s, size_t(canvas.dots_x())), x_axis, y_axis);
  for (int r = 0; r < ph; ++r)
    for (int c = 0; c < pw; ++c)
      if (canvas.glyph(c, r) != U' ')
        out.set(px + c, py + r, canvas.glyph(c, r), uint8_t(canvas.color(c, r)));
  int last_row = -1;
  for (double t : yt) {
    const int r = int(std::lround((1 - y_axis.unit(t)) * (ph - 1)));
    if (r == last_row || r < 0 || r >= ph) continue;
    const std::string label = tick_label(t);
    out.text(px - 1 - int(label.size()), py + r, label, kGrey);
    out.set(px - 1, py + r, u ? U'┤' : U'+', kGrey);
    last_row = r;
  }
  int next_free = px;
  for (double t : x_axis.ticks(std::max(2, pw / 12))) {
    const std::string label = tick_label(t);
    const int c = px + int(std::lround(x_axis.unit(t) * (pw - 1))) - int(label.size()) / 2;
    const int start = std::clamp(c, px, px + pw - int(label.size()));
    if (start < next_free) continue;
    out.text(start, py + ph, label, kGrey);
    next_free = start + int(label.size()) + 2;
  }
}

void Dashboard::draw_training(CellBuffer& out, int x, int y, int w, int h, double now,
                              bool boxed) const {
  const bool u = options_.unicode;
  const RunMetrics* m = runs_.empty() ? nullptr : &run(focus_);
  const StepPoint* last = m && !m->steps.empty() ? &m->steps.back() : nullptr;
  const int64_t planned = m ? m->planned_steps() : 0;
  const double tok_s =
      m ? recent_mean(m->steps, 20, [](const StepPoint& s) { return s.tok_s; }) : kNaN;
  const double tflops =
      m ? recent_mean(m->steps, 20, [](const StepPoint& s) { return s.tflops; }) : kNaN;
  const double ms = m ? recent_mean(m->steps, 20, [](const StepPoint& s) { return s.ms; }) : kNaN;
  const double peak = m ? m->peak_tflops() : kNaN;
  const double mfu = peak > 0 ? 100 * tflops / peak : kNaN;
  const double eta = m ? eta_seconds(*m) : kNaN;
  const EvalPoint* val = m && !m->evals.empty() ? &m->evals.back() : nullptr;
  const bool done = m && !m->report.is_null();
  std::string step_text = last ? std::to_string(last->step) : "-";
  if (planned > 0) step_text += fmt(" / %lld", (long long)planned);
  if (last && planned > 0)
    step_text += fmt("  (%.1f%%)", 100.0 * double(last->step) / double(planned));

  if (!boxed) {  // the compact three lines of the narrow layout
    out.text(x, y,
             "step " + step_text + "  ETA " +
                 (done ? std::string("done") : format_duration_short(eta)) + "  loss " +
                 (last ? num("%.4f", last->loss) : "-"),
             kDefault, kNormal, w);
    out.text(x, y + 1,
             "val " + (val ? num("%.4f", val->val_loss) : "-") + "  lr " +
                 (last ? num("%.2e", last->lr) : "-") + "  gnorm " +
                 (last ? num("%.3f", last->grad_norm) : "-"),
             kDefault, kNormal, w);
    out.text(
        x, y + 2,
        "tok/s " + si(tok_s) + "  MFU " + num("%.1f%%", mfu) + "  TFLOPS " + num("%.3f", tflops),
        kDefault, kNormal, w);
    return;
  }
  out.box(x, y, w, h, runs_.size() > 1 && m ? "Training: " + m->name : "Training", kDefault, u);
  const int ix = x + 2, iw = w - 4;
  int row = y + 1;
  const int end = y + h - 1;
  auto line = [&](const std::string& label, const std::string& value,
                  const std::vector<double>* spark = nullptr, uint8_t color = kDefault) {
    if (row >= end) return;
    field(out, ix, row, iw, label, value, color);
    if (spark && iw > 10 + int(value.size()) + 4) {
      const int cols = std::min(16, iw - 10 - int(value.size()) - 2);
      const std::string s = sparkline(*spark, cols, u);
      out.text(ix + iw - text_columns(s), row, s, kGrey);
    }
    ++row;
  };
  std::vector<double> lr_hist, norm_hist, tok_hist;
  if (m) {  // sparklines are at most 16 cells wide
    lr_hist = step_series(m->steps, &StepPoint::lr, 16).y;
    norm_hist = step_series(m->steps, &StepPoint::grad_norm, 16).y;
    tok_hist = step_series(m->steps, &StepPoint::tok_s, 16).y;
  }
  line("step", step_text);
  line("loss", last ? num("%.4f", last->loss) : "-", nullptr, kCyan);
  line("val loss", val ? num("%.4f", val->val_loss) + fmt(" @ %lld", (long long)val->step) : "-",
       nullptr, kBrightCyan);
  line("lr", last ? num("%.3e", last->lr) : "-", &lr_hist);
  line("grad norm", last ? num("%.3f", last->grad_norm) : "-", &norm_hist);
  line("tok/s", si(tok_s), &tok_hist);
  line("TFLOPS", num("%.3f", tflops) + "  MFU " + num("%.1f%%", mfu));
  line("ms/step", num("%.1f", ms));
  line("tokens", last ? si(last->tokens) : "-");
  if (row < end - 1 && m && m->run.is_object()) {  // spare rows: what is being trained, and where
    const auto& r = m->run;
    std::string model =
        r.contains("model") && r["model"].is_object() ? r["model"].value("name", "") : "";
    if (r.contains("params") && r["params"].is_number())
      model += fmt(" (%.2fM)", r["params"].get<double>() / 1e6);
    if (!model.empty()) line("model", model);
  }
  if (row < end - 1 && m && m->run.is_object() && m->run.contains("device") &&
      m->run["device"].is_string())
    line("device", m->run["device"].get<std::string>());
  if (done) {
    const auto& r = m->report;
    const double wall =
        r.contains("wall_s") && r["wall_s"].is_number() ? r["wall_s"].get<double>() : kNaN;
    line("finished", "in " + format_duration_short(wall), nullptr, kGreen);
  } else {
    const double elapsed = m && std::isfinite(m->start_time) ? now - m->start_time : kNaN;
    line("ETA", format_duration_short(eta) + "  (ran " + format_duration_short(elapsed) + ")");
  }
}

void Dashboard::draw_system(CellBuffer& out, int x, int y, int w, int h, double now) const {
  out.box(x, y, w, h, "System", kDefault, options_.unicode);
  const RunMetrics* m = runs_.empty() ? nullptr : &run(focus_);
  const SystemPoint* rec = m && !m->system.empty() ? &m->system.back() : nullptr;
  // The trainer's own records win, except over live readings of the trainer
  // process the dashboard started (fresher); live machine readings fill gaps.
  auto pick = [&](const std::optional<double>& live, double SystemPoint::*f) {
    const double logged = rec ? rec->*f : kNaN;
    if (live && (live_process_ || !std::isfinite(logged))) return *live;
    return logged;
  };
  const std::optional<double> none;
  const double cpu = pick(live_ && live_process_ ? live_->cpu_pct : none, &SystemPoint::cpu_pct);
  const double rss = pick(live_ && live_process_ ? live_->rss_mb : none, &SystemPoint::rss_mb);
  const double gpu_util = pick(live_ ? live_->gpu_util : none, &SystemPoint::gpu_util);
  const double gpu_mem = pick(live_ ? live_->gpu_mem_mb : none, &SystemPoint::gpu_mem_mb);
  const double gpu_w = pick(live_ ? live_->gpu_power_w : none, &SystemPoint::gpu_power_w);
  const double cpu_w = pick(live_ ? live_->cpu_power_w : none, &SystemPoint::cpu_power_w);
  // Records from before gpu_power_w/cpu_power_w existed carry only power_w.
  const double total_w =
      rec && !std::isfinite(gpu_w) && !std::isfinite(cpu_w) ? rec->power_w : kNaN;

  const int ix = x + 2, iw = w - 4;
  int row = y + 1;
  const int end = y + h - 1;
  auto line = [&](const std::string& label, const std::string& value, uint8_t color = kDefault) {
    if (row < end) field(out, ix, row++, iw, label, value, color);
  };
  line("CPU", std::isfinite(cpu) ? fmt("%.0f%%  (%.1f cores)", cpu, cpu / 100) : "-");
  line("RSS", std::isfinite(rss) ? (rss >= 10240 ? fmt("%.1f GB", rss / 1024) : fmt("%.0f MB", rss))
                                 : "-");
  if (std::isfinite(gpu_util) || std::isfinite(gpu_mem)) {
    std::string g = num("%.0f%%", gpu_util) + "  " + num("%.1f GB", gpu_mem / 1024);
    if (std::isfinite(gpu_w)) g += fmt("  %.0f W", gpu_w);
    line("GPU", g);
  } else {
    line("GPU", "- (no NVML)", kGrey);
  }
  if (std::isfinite(cpu_w))
    line("CPU power", fmt("%.0f W (package)", cpu_w));
  else if (std::isfinite(total_w))
    line("power", fmt("%.0f W", total_w));
  else
    line("CPU power", "- (no powercap)", kGrey);
  if (live_ && live_process_) {
    line("source", "live", kGrey);
  } else if (rec && std::isfinite(rec->time)) {
    line("source", "metrics.jsonl, " + format_duration_short(now - rec->time) + " ago", kGrey);
  }
}

int Dashboard::sample_lines(int cols) const {
  if (runs_.empty() || run(focus_).samples.empty()) return 1;
  const SampleRecord& s = run(focus_).samples.back();
  return int(wrap_text(s.prompt + s.text, cols).size());
}

void Dashboard::draw_sample(CellBuffer& out, int x, int y, int w, int h) const {
  const RunMetrics* m = runs_.empty() ? nullptr : &run(focus_);
  const SampleRecord* s = m && !m->samples.empty() ? &m->samples.back() : nullptr;
  out.box(x, y, w, h, s ? fmt("Sample @ step %lld", (long long)s->step) : "Sample", kDefault,
          options_.unicode);
  const int ix = x + 2, iw = w - 4, ih = h - 2;
  if (iw < 4 || ih < 1) return;
  if (!s) {
    out.text(ix, y + 1, "no sample yet (kiln train --sample-every N)", kGrey, kNormal, iw);
    return;
  }
  // The prompt in bold, the generation after it, wrapped together. Wrapping
  // only changes whitespace, so the prompt is the first K visible characters.
  const std::string all = s->prompt + s->text;
  const std::vector<std::string> lines = wrap_text(all, iw);
  int bold_left = 0;
  for (size_t pos = 0; pos < s->prompt.size();) {
    const char32_t c = next_code_point(s->prompt, &pos);
    if (c > U' ' && !(c >= 0x7F && c < 0xA0)) ++bold_left;
  }
  for (int r = 0; r < ih && r < int(lines.size()); ++r) {
    std::string text = lines[size_t(r)];
    const bool cut = r == ih - 1 && int(lines.size()) > ih;
    const int n = out.text(ix, y + 1 + r, text, kDefault, kNormal, cut ? iw - 3 : iw);
    if (cut) out.text(ix + n, y + 1 + r, "...", kGrey);
    for (int c = ix; c < ix + n && bold_left > 0; ++c) {
      const Cell& cell = out.at(c, y + 1 + r);
      if (cell.ch == U' ' || cell.ch == 0) continue;
      out.set(c, y + 1 + r, cell.ch, kDefault, kBold);
      --bold_left;
    }
  }
}

void Dashboard::draw_output(CellBuffer& out, int x, int y, int w, int h) const {
  out.box(x, y, w, h, "kiln train output", kDefault, options_.unicode);
  const int ix = x + 2, iw = w - 4, ih = h - 2;
  if (iw < 4 || ih < 1) return;
  // Wrap the newest lines and show the tail that fits.
  std::vector<std::string> wrapped;
  for (size_t i = output_.size() > size_t(ih) ? output_.size() - size_t(ih) : 0; i < output_.size();
       ++i)
    for (auto& l : wrap_text(output_[i], iw)) wrapped.push_back(l);
  const size_t first = wrapped.size() > size_t(ih) ? wrapped.size() - size_t(ih) : 0;
  for (size_t i = first; i < wrapped.size(); ++i)
    out.text(ix, y + 1 + int(i - first), wrapped[i], kDefault, kNormal, iw);
}

}  // namespace kiln
