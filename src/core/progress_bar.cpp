#include "core/progress_bar.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace kiln {

namespace {
constexpr int kBarWidth = 24;
}

std::string human_count(double value) {
  char buf[32];
  if (value >= 1e9)
    std::snprintf(buf, sizeof(buf), "%.2f G", value / 1e9);
  else if (value >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.2f M", value / 1e6);
  else if (value >= 1e4)
    std::snprintf(buf, sizeof(buf), "%.1f k", value / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f", value);
  return buf;
}

std::string human_bytes(double bytes) {
  char buf[32];
  if (bytes >= 1e9)
    std::snprintf(buf, sizeof(buf), "%.2f GB", bytes / 1e9);
  else if (bytes >= 1e6)
    std::snprintf(buf, sizeof(buf), "%.1f MB", bytes / 1e6);
  else if (bytes >= 1e3)
    std::snprintf(buf, sizeof(buf), "%.1f kB", bytes / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.0f B", bytes);
  return buf;
}

ProgressBar::ProgressBar(std::string label, double total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled), tty_(::isatty(2) == 1) {}

ProgressBar::~ProgressBar() {
  if (drawn_ && !finished_ && tty_) std::fputc('\n', stderr);
}

void ProgressBar::update(double done, const std::string& detail) {
  if (!enabled_ || finished_) return;
  const double now = timer_.seconds();
  const double fraction = total_ > 0 ? std::clamp(done / total_, 0.0, 1.0) : 0.0;
  if (tty_) {
    if (last_draw_ >= 0 && now - last_draw_ < 0.1) return;
    last_draw_ = now;
    std::string line("\r\033[K");
    line.append(label_).append(" ");
    if (total_ > 0) {
      const int filled = static_cast<int>(fraction * kBarWidth + 0.5);
      line += "[" + std::string(static_cast<size_t>(filled), '#') +
              std::string(static_cast<size_t>(kBarWidth - filled), '.') + "] ";
      char pct[16];
      std::snprintf(pct, sizeof(pct), "%3.0f%% ", fraction * 100.0);
      line += pct;
    }
    line += detail;
    std::fputs(line.c_str(), stderr);
    std::fflush(stderr);
    drawn_ = true;
    return;
  }
  // Not a terminal: one plain line per quarter of the way.
  const int quarter = static_cast<int>(fraction * 4.0);
  if (total_ <= 0 || quarter <= last_quarter_ || quarter >= 4) return;
  last_quarter_ = quarter;
  std::fprintf(stderr, "%s %d%% %s\n", label_.c_str(), quarter * 25, detail.c_str());
  std::fflush(stderr);
}

void ProgressBar::finish(const std::string& summary) {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  if (tty_ && drawn_) std::fputs("\r\033[K", stderr);
  std::fprintf(stderr, "%s %s\n", label_.c_str(), summary.c_str());
  std::fflush(stderr);
}

}  // namespace kiln

namespace kiln {
void ProgressBar::clear() {
  if (finished_) return;
  finished_ = true;
  if (tty_ && drawn_) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
}
}  // namespace kiln
