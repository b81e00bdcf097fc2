#include "report/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <limits>
#include <set>

#include "io/atomic_file.h"
#include "io/file_util.h"
#include "report/chart_render.h"
#include "report/png.h"

namespace kiln {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string fmt(const char* format, double v) {
  if (!std::isfinite(v)) return "&ndash;";
  char buf[64];
  std::snprintf(buf, sizeof(buf), format, v);
  return buf;
}

double json_num(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return kNaN;
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

// Smoothing window (half width) strong enough to read the trend of a noisy
// loss whatever the run length: 2% of the points, at most 500 either side.
size_t smoothing_half_window(size_t n) { return std::clamp<size_t>(n / 50, 1, 500); }

// Tokens seen at an eval step, from the nearest step record at or before it.
double tokens_at(const RunMetrics& m, int64_t step) {
  auto it = std::upper_bound(m.steps.begin(), m.steps.end(), step,
                             [](int64_t s, const StepPoint& p) { return s < p.step; });
  return it == m.steps.begin() ? kNaN : std::prev(it)->tokens;
}

using StepX = std::function<double(const RunMetrics&, const StepPoint&)>;
using EvalX = std::function<double(const RunMetrics&, const EvalPoint&)>;
using StepY = std::function<double(const StepPoint&)>;

// For each run: the raw values light, their moving average in the run's
// colour (labelled), and optionally the validation loss dashed with markers.
void add_smoothed(ChartSpec& c, const std::vector<RunMetrics>& runs, const StepX& x_of,
                  const StepY& y_of, const EvalX* val_x) {
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunMetrics& m = runs[i];
    Series raw;
    raw.color = int(i);
    raw.faint = true;
    for (const auto& p : m.steps) raw.x.push_back(x_of(m, p)), raw.y.push_back(y_of(p));
    Series smooth = raw;
    smooth.faint = false;
    smooth.label = m.name + (val_x ? " train" : "");
    smooth.y = moving_average(raw.y, smoothing_half_window(raw.y.size()));
    if (raw.y.size() > 20) c.series.push_back(std::move(raw));
    c.series.push_back(std::move(smooth));
    if (val_x && !m.evals.empty()) {
      Series val;
      val.color = int(i);
      val.dashed = true;
      val.markers = true;
      val.label = m.name + " val";
      for (const auto& e : m.evals) val.x.push_back((*val_x)(m, e)), val.y.push_back(e.val_loss);
      c.series.push_back(std::move(val));
    }
  }
}

std::string legend(const ChartSpec& c) {
  std::string s = "<figcaption>";
  for (const auto& ser : c.series) {
    if (ser.faint || ser.label.empty()) continue;
    s += "<span class=\"key\"><span class=\"swatch" + std::string(ser.dashed ? " dashed" : "") +
         "\" style=\"border-color:" + chart_color_hex(ser.color) + "\"></span>" +
         html_escape(ser.label) + "</span>";
  }
  return s + "</figcaption>";
}

std::string figure(const ChartSpec& c, int index) {
  return "<figure>" + svg_chart(c, 600, 340, "c" + std::to_string(index)) + legend(c) +
         "</figure>\n";
}

std::vector<ChartSpec> all_charts(const std::vector<RunMetrics>& runs) {
  std::vector<ChartSpec> charts;
  const StepX by_step = [](const RunMetrics&, const StepPoint& p) { return double(p.step); };
  const StepY loss = [](const StepPoint& p) { return p.loss; };
  charts.push_back(loss_chart(runs));

  ChartSpec tokens{"Loss vs tokens", "tokens seen (log scale)", "loss", true, false, {}};
  const EvalX eval_tokens = [](const RunMetrics& m, const EvalPoint& e) {
    return tokens_at(m, e.step);
  };
  add_smoothed(
      tokens, runs, [](const RunMetrics&, const StepPoint& p) { return p.tokens; }, loss,
      &eval_tokens);
  charts.push_back(std::move(tokens));

  ChartSpec wall{"Loss vs wall time", "minutes since the run started", "loss", false, false, {}};
  const EvalX eval_minutes = [](const RunMetrics& m, const EvalPoint& e) {
    return (e.time - m.start_time) / 60;
  };
  add_smoothed(
      wall, runs,
      [](const RunMetrics& m, const StepPoint& p) { return (p.time - m.start_time) / 60; }, loss,
      &eval_minutes);
  charts.push_back(std::move(wall));

  ChartSpec speed{"Throughput", "step", "tokens / s", false, false, {}};
  speed.y_from_zero = true;
  add_smoothed(
      speed, runs, by_step, [](const StepPoint& p) { return p.tok_s; }, nullptr);
  charts.push_back(std::move(speed));

  ChartSpec lr{"Learning rate", "step", "lr", false, false, {}};
  lr.y_from_zero = true;
  for (size_t i = 0; i < runs.size(); ++i) {
    Series s;
    s.color = int(i);
    s.label = runs[i].name;
    for (const auto& p : runs[i].steps) s.x.push_back(double(p.step)), s.y.push_back(p.lr);
    lr.series.push_back(std::move(s));
  }
  charts.push_back(std::move(lr));

  ChartSpec norm{"Gradient norm (before clipping)", "step", "global L2 norm", false, false, {}};
  add_smoothed(
      norm, runs, by_step, [](const StepPoint& p) { return p.grad_norm; }, nullptr);
  charts.push_back(std::move(norm));

  bool any_system = false;
  for (const auto& m : runs) any_system = any_system || !m.system.empty();
  if (any_system) {
    ChartSpec mem{"Memory", "minutes since the run started", "RSS (MB)", false, false, {}};
    mem.y_from_zero = true;
    for (size_t i = 0; i < runs.size(); ++i) {
      Series s;
      s.color = int(i);
      s.label = runs[i].name;
      for (const auto& p : runs[i].system)
        s.x.push_back((p.time - runs[i].start_time) / 60), s.y.push_back(p.rss_mb);
      mem.series.push_back(std::move(s));
    }
    charts.push_back(std::move(mem));
  }
  return charts;
}

std::string css() {
  return R"(body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;margin:24px auto;max-width:1280px;padding:0 16px;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;margin:0 0 12px}
table{border-collapse:collapse;background:#fff;margin:6px 0}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f2f2f2;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
figure{margin:0;background:#fff;border:1px solid #ddd;border-radius:6px;padding:6px}
svg.chart{width:100%;height:auto;display:block}
svg .title{font:600 14px system-ui,sans-serif;fill:#1f2328}svg .tick{font:11px system-ui,sans-serif;fill:#666}
svg .label{font:12px system-ui,sans-serif;fill:#444}svg .empty{font:13px system-ui,sans-serif;fill:#999}
svg .grid{stroke:#e6e6e6;stroke-width:1}svg .frame{fill:none;stroke:#999;stroke-width:1}
figcaption{font-size:12px;color:#444;padding:2px 8px}.key{margin-right:14px;white-space:nowrap}
.swatch{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;margin-right:5px}
.swatch.dashed{border-top-style:dashed}
.sample{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px 12px;white-space:pre-wrap;margin:6px 0}
.sample b{color:#0b5394}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.note{color:#777;font-style:italic})";
}

// Row per run: what it is and how it ended.
std::string runs_table(const std::vector<RunMetrics>& runs) {
  std::string s =
      "<table "
      "class=\"runs\"><tr><th>run</th><th>model</th><th>params</th><th>device</th><th>steps</th>"
      "<th>tokens</th><th>final loss</th><th>best val "
      "loss</th><th>tokens/s</th><th>MFU</th><th>wall</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunMetrics& m = runs[i];
    const nlohmann::json& r = m.run;
    std::string model = r.is_object() && r.contains("model") && r["model"].is_object()
                            ? r["model"].value("name", "")
                            : "";
    const std::string device = r.is_object() && r.contains("device") && r["device"].is_string()
                                   ? r["device"].get<std::string>()
                                   : "";
    std::vector<double> losses;
    for (const auto& p : m.steps) losses.push_back(p.loss);
    const std::vector<double> smooth = moving_average(losses, smoothing_half_window(losses.size()));
    double best_val = kNaN;
    for (const auto& e : m.evals)
      if (std::isfinite(e.val_loss) && !(best_val <= e.val_loss)) best_val = e.val_loss;
    const int64_t done = m.steps.empty() ? 0 : m.steps.back().step, planned = m.planned_steps();
    // Without an efficiency report (a run still going), the step records' means stand in.
    double tok_s = json_num(m.report, "tok_s"), mfu = json_num(m.report, "mfu");
    if (!std::isfinite(tok_s) || !std::isfinite(mfu)) {
      double sum_tok = 0, sum_tf = 0;
      size_t k_tok = 0, k_tf = 0;
      for (const auto& p : m.steps) {
        if (std::isfinite(p.tok_s)) sum_tok += p.tok_s, ++k_tok;
        if (std::isfinite(p.tflops)) sum_tf += p.tflops, ++k_tf;
      }
      if (!std::isfinite(tok_s) && k_tok) tok_s = sum_tok / double(k_tok);
      if (!std::isfinite(mfu) && k_tf && m.peak_tflops() > 0)
        mfu = sum_tf / double(k_tf) / m.peak_tflops();
    }
    const double wall = json_num(m.report, "wall_s");
    const double elapsed = std::isfinite(wall) ? wall
                           : m.steps.empty()   ? kNaN
                                               : m.steps.back().time - m.start_time;
    s += "<tr><td><span class=\"swatch\" style=\"border-color:" + chart_color_hex(int(i)) +
         "\"></span>" + html_escape(m.name) + "</td><td>" + html_escape(model) +
         "</td><td class=\"num\">" + fmt("%.2fM", json_num(r, "params") / 1e6) + "</td><td>" +
         html_escape(device) + "</td><td class=\"num\">" + std::to_string(done) +
         (planned > 0 ? " / " + std::to_string(planned) : "") + "</td><td class=\"num\">" +
         fmt("%.3gM", m.steps.empty() ? kNaN : m.steps.back().tokens / 1e6) +
         "</td><td class=\"num\">" + fmt("%.4f", smooth.empty() ? kNaN : smooth.back()) +
         "</td><td class=\"num\">" + fmt("%.4f", best_val) + "</td><td class=\"num\">" +
         fmt("%.0f", tok_s) + "</td><td class=\"num\">" + fmt("%.1f%%", 100 * mfu) +
         "</td><td class=\"num\">" + fmt("%.1f s", elapsed) + "</td></tr>\n";
  }
  return s + "</table>\n";
}

// The trainer's "report" record, one column per run.
std::string efficiency_table(const std::vector<RunMetrics>& runs) {
  struct Row {
    const char* key;
    const char* label;
    const char* format;
    double scale;
  };
  static const Row rows[] = {{"steps", "steps this run", "%.0f", 1},
                             {"total_steps", "steps in total", "%.0f", 1},
                             {"wall_s", "wall time (s)", "%.2f", 1},
                             {"compile_s", "plan/compile time (s)", "%.2f", 1},
                             {"train_s", "train time (s)", "%.2f", 1},
                             {"ms_per_step", "ms / step", "%.1f", 1},
                             {"tok_s", "tokens / s", "%.0f", 1},
                             {"tflops", "achieved TFLOPS", "%.3f", 1},
                             {"peak_tflops", "measured GEMM peak TFLOPS", "%.3f", 1},
                             {"mfu", "MFU (%)", "%.1f", 100},
                             {"peak_rss_mb", "peak RSS (MB)", "%.0f", 1}};
  std::string s = "<table class=\"efficiency\"><tr><th></th>";
  for (const auto& m : runs) s += "<th>" + html_escape(m.name) + "</th>";
  s += "</tr>\n";
  for (const Row& row : rows) {
    s += "<tr><th>" + std::string(row.label) + "</th>";
    for (const auto& m : runs)
      s +=
          "<td class=\"num\">" + fmt(row.format, json_num(m.report, row.key) * row.scale) + "</td>";
    s += "</tr>\n";
  }
  s += "</table>\n";
  for (const auto& m : runs)
    if (m.report.is_null())
      s += "<p class=\"note\">" + html_escape(m.name) +
           ": no efficiency report yet (the run is still going, or stopped before it could write "
           "one).</p>\n";
  return s;
}

std::string value_text(const nlohmann::json& v) {
  return v.is_string() ? v.get<std::string>()
                       : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string config_section(const std::vector<RunMetrics>& runs) {
  std::string s;
  for (const auto& m : runs) {
    s += "<details open><summary>" + html_escape(m.name) + "</summary>";
    if (!m.run.is_object()) {
      s += "<p class=\"note\">no run record in " + html_escape(m.source) + "</p></details>\n";
      continue;
    }
    s += "<table class=\"config\"><tr><th>setting</th><th>value</th></tr>\n";
    for (const char* group : {"config", "model"}) {
      auto it = m.run.find(group);
      if (it == m.run.end() || !it->is_object()) continue;
      for (auto kv = it->begin(); kv != it->end(); ++kv)
        s += "<tr><td>" + std::string(group) + "." + html_escape(kv.key()) + "</td><td>" +
             html_escape(value_text(kv.value())) + "</td></tr>\n";
    }
    for (const char* key : {"params", "device", "peak_tflops", "resumed_from_step"}) {
      auto it = m.run.find(key);
      if (it != m.run.end())
        s += "<tr><td>" + std::string(key) + "</td><td>" + html_escape(value_text(*it)) +
             "</td></tr>\n";
    }
    s += "</table></details>\n";
  }
  return s;
}

std::string samples_section(const std::vector<RunMetrics>& runs) {
  std::string s;
  for (const auto& m : runs) {
    if (m.samples.empty()) continue;
    const SampleRecord& r = m.samples.back();
    s += "<p><b>" + html_escape(m.name) + "</b>, step " + std::to_string(r.step) +
         ":</p><div class=\"sample\"><b>" + html_escape(r.prompt) + "</b>" + html_escape(r.text) +
         "</div>\n";
  }
  return s.empty() ? "<p class=\"note\">no samples were logged (kiln train --sample-every N)</p>\n"
                   : s;
}

// Same-named directories (runs/a/out, runs/b/out) get their parent's name too.
std::vector<RunMetrics> distinct_names(std::vector<RunMetrics> runs) {
  std::set<std::string> seen;
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string name = runs[i].name;
    for (int k = 2; seen.count(name); ++k) name = runs[i].name + " (" + std::to_string(k) + ")";
    runs[i].name = name;
    seen.insert(name);
  }
  return runs;
}

}  // namespace

ChartSpec loss_chart(const std::vector<RunMetrics>& runs) {
  ChartSpec c{"Loss", "step", "loss", false, false, {}};
  const EvalX eval_step = [](const RunMetrics&, const EvalPoint& e) { return double(e.step); };
  add_smoothed(
      c, runs, [](const RunMetrics&, const StepPoint& p) { return double(p.step); },
      [](const StepPoint& p) { return p.loss; }, &eval_step);
  return c;
}

std::string html_report(const std::vector<RunMetrics>& input, double generated) {
  const std::vector<RunMetrics> runs = distinct_names(input);
  std::string names;
  for (const auto& m : runs) names += (names.empty() ? "" : ", ") + m.name;
  char when[64] = "";
  const std::time_t t = std::time_t(generated);
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Kiln "
      "report: " +
      html_escape(names) + "</title>\n<style>\n" + css() + "\n</style>\n</head>\n<body>\n";
  h += "<h1>Kiln training report</h1>\n<p class=\"meta\">" + std::to_string(runs.size()) +
       (runs.size() == 1 ? " run" : " runs") + ": " + html_escape(names) + " &middot; written " +
       when + " by kiln report</p>\n";
  h += "<h2>Runs</h2>\n" + runs_table(runs);
  h += "<h2>Curves</h2>\n<div class=\"charts\">\n";
  const std::vector<ChartSpec> charts = all_charts(runs);
  for (size_t i = 0; i < charts.size(); ++i) h += figure(charts[i], int(i));
  h += "</div>\n<h2>Efficiency report</h2>\n" + efficiency_table(runs);
  h += "<h2>Latest samples</h2>\n" + samples_section(runs);
  h += "<h2>Configuration</h2>\n" + config_section(runs);
  h += "</body>\n</html>\n";
  return h;
}

void write_report(const std::vector<std::string>& run_dirs, const std::string& html_path,
                  const std::string& png_path) {
  std::vector<RunMetrics> runs;
  for (const auto& dir : run_dirs)
    runs.push_back(load_run_metrics(dir));  // every input checked before writing
  const double now = double(std::time(nullptr));
  const std::string html = html_report(runs, now);
  std::string png;
  if (!png_path.empty())
    png = encode_png(raster_chart(loss_chart(distinct_names(runs)), 1000, 600));
  write_file_atomic(html_path, html);
  if (!png_path.empty()) write_file_atomic(png_path, png);
}

}  // namespace kiln
