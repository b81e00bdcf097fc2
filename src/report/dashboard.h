// The live dashboard's content and layout, independent of any terminal: it
// tails the runs' metrics.jsonl files and draws one frame into a CellBuffer of
// whatever size it is given (header; loss and validation-loss plot; training
// numbers with sparklines; system panel; latest sample; the trainer's output
// when the dashboard started it). Tests render it off-screen and read the text.
#pragma once
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/system_stats.h"
#include "report/cell_buffer.h"
#include "report/metrics_reader.h"

namespace kiln {

struct DashOptions {
  bool log_x = false;   // loss plot against log10(step): the early drop and the tail both show
  bool unicode = true;  // braille plot and line-drawing frames; ASCII otherwise
};

class Dashboard {
 public:
  Dashboard(const std::vector<std::string>& run_dirs, DashOptions options);

  // Reads what the runs appended; true when anything changed.
  bool poll();
  // Draws the frame for wall-clock time `now` (unix seconds: ETA and ages).
  void render(CellBuffer& out, double now) const;

  // Live readings taken by the dashboard itself (of the trainer it started, or
  // just the GPU / package power when it watches a run from outside).
  // `process` says whether cpu_pct and rss_mb describe the trainer.
  void set_live_system(const SystemSample& s, bool process) { live_ = s, live_process_ = process; }
  // Lines printed by the trainer the dashboard started (newest last) and its state.
  void add_output_line(const std::string& line);
  void set_child_status(const std::string& status) { child_status_ = status; }
  const std::deque<std::string>& output_lines() const { return output_; }

  // Keys: l toggles log-x, Tab / n picks the run the numbers describe.
  void toggle_log_x() { options_.log_x = !options_.log_x; }
  void next_run() { focus_ = runs_.empty() ? 0 : (focus_ + 1) % runs_.size(); }
  const DashOptions& options() const { return options_; }
  size_t run_count() const { return runs_.size(); }
  const RunMetrics& run(size_t i) const { return runs_[i]->metrics(); }

 private:
  void draw_header(CellBuffer& out, int y, int w, double now) const;
  void draw_loss(CellBuffer& out, int x, int y, int w, int h) const;
  void draw_training(CellBuffer& out, int x, int y, int w, int h, double now, bool boxed) const;
  void draw_system(CellBuffer& out, int x, int y, int w, int h, double now) const;
  void draw_sample(CellBuffer& out, int x, int y, int w, int h) const;
  void draw_output(CellBuffer& out, int x, int y, int w, int h) const;
  bool tail_seen(size_t i) const;
  int sample_lines(int cols) const;  // wrapped lines of the latest sample

  std::vector<std::unique_ptr<MetricsTail>> runs_;
  DashOptions options_;
  size_t focus_ = 0;
  std::optional<SystemSample> live_;
  bool live_process_ = false;
  std::deque<std::string> output_;
  std::string child_status_;
};

// "1h02m", "3m05s", "42s"; "-" for unknown.
std::string format_duration_short(double seconds);
// Eight-level block sparkline of the last `cols` finite values.
std::string sparkline(const std::vector<double>& values, int cols, bool unicode);

}  // namespace kiln
