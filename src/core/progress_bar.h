// A one-line progress display on stderr for long data jobs (tokenizer
// training, dataset preparation, archive extraction).
//
// On a terminal it redraws one line at most ten times a second; when stderr is
// a file or a pipe (CI logs, tests) it prints a plain line at every 25% so the
// log shows progress without carriage-return noise.
#pragma once
#include <string>

#include "core/timer.h"

namespace kiln {

class ProgressBar {
 public:
  // `total` <= 0 means unknown (no percentage or bar, just the counters).
  ProgressBar(std::string label, double total, bool enabled = true);
  ~ProgressBar();

  // `done` in the same units as total; `detail` is shown after the bar.
  void update(double done, const std::string& detail = "");
  // Ends the line and prints `summary` (always, even when not a terminal).
  void finish(const std::string& summary);
  // Ends without a summary, erasing the line on a terminal.
  void clear();

  double seconds() const { return timer_.seconds(); }

 private:
  std::string label_;
  double total_;
  bool enabled_;
  bool tty_;
  bool drawn_ = false;
  bool finished_ = false;
  int last_quarter_ = 0;
  double last_draw_ = -1.0;
  Timer timer_;
};

// "1.23 M", "456.7 k", "12": a count with an SI suffix.
std::string human_count(double value);
// "1.2 GB", "34.5 MB": a byte count.
std::string human_bytes(double bytes);

}  // namespace kiln
