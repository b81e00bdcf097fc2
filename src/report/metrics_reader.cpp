#include "report/metrics_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A number field, or NaN when it is missing or not a number (a partial run,
// an older schema, or a null the writer produced for inf/nan).
double num(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : kNaN;
}

int64_t integer(const nlohmann::json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  const double v = it->get<double>();
  return std::isfinite(v) ? int64_t(v) : fallback;
}

std::string text(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A resumed run re-logs the steps after its checkpoint: keep the newest
// trajectory by dropping everything at or past the step being written again.
template <typename Point>
void drop_from(std::vector<Point>& points, int64_t step) {
  while (!points.empty() && points.back().step >= step) points.pop_back();
}

}  // namespace

int64_t RunMetrics::planned_steps() const {
  if (!run.is_object()) return 0;
  auto it = run.find("config");
  return it != run.end() && it->is_object() ? integer(*it, "steps", 0) : 0;
}

double RunMetrics::peak_tflops() const {
  double p = run.is_object() ? num(run, "peak_tflops") : kNaN;
  if (!(p > 0) && report.is_object()) p = num(report, "peak_tflops");
  return p > 0 ? p : kNaN;
}

void apply_record(RunMetrics& m, const nlohmann::json& r) {
  const std::string type = text(r, "type");
  const double time = num(r, "time");
  if (std::isfinite(time) && !(m.start_time <= time)) m.start_time = time;  // also replaces NaN
  if (type == "step") {
    StepPoint p;
    p.step = integer(r, "step", m.steps.empty() ? 1 : m.steps.back().step + 1);
    drop_from(m.steps, p.step);
    p.time = time;
    p.tokens = num(r, "tokens");
    p.loss = num(r, "loss");
    p.lr = num(r, "lr");
    p.grad_norm = num(r, "grad_norm");
    p.ms = num(r, "ms");
    p.tok_s = num(r, "tok_s");
    p.tflops = num(r, "tflops");
    m.steps.push_back(p);
  } else if (type == "eval") {
    EvalPoint p;
    p.step = integer(r, "step", m.steps.empty() ? 0 : m.steps.back().step);
    drop_from(m.evals, p.step);
    p.time = time;
    p.val_loss = num(r, "val_loss");
    m.evals.push_back(p);
  } else if (type == "sample") {
    m.samples.push_back({integer(r, "step", 0), time, text(r, "prompt"), text(r, "text")});
    if (m.samples.size() > 64) m.samples.erase(m.samples.begin());  // the dashboard shows the last
  } else if (type == "system") {
    SystemPoint p;
    p.time = time;
    p.cpu_pct = num(r, "cpu_pct");
    p.rss_mb = num(r, "rss_mb");
    p.gpu_util = num(r, "gpu_util");
    p.gpu_mem_mb = num(r, "gpu_mem_mb");
    p.power_w = num(r, "power_w");
    p.gpu_power_w = num(r, "gpu_power_w");
    p.cpu_power_w = num(r, "cpu_power_w");
    m.system.push_back(p);
  } else if (type == "checkpoint") {
    m.checkpoints.push_back(r);
  } else if (type == "run") {
    m.run = r;
  } else if (type == "report") {
    m.report = r;
  }
}

std::string metrics_path(const std::string& run_dir_or_file) {
  std::error_code ec;
  if (fs::is_directory(run_dir_or_file, ec))
    return (fs::path(run_dir_or_file) / "metrics.jsonl").string();
  if (fs::path(run_dir_or_file).extension() == ".jsonl") return run_dir_or_file;
  return (fs::path(run_dir_or_file) / "metrics.jsonl").string();
}

std::string run_name(const std::string& run_dir_or_file) {
  fs::path p = fs::path(metrics_path(run_dir_or_file)).lexically_normal();
  fs::path dir = p.parent_path();
  std::string name = dir.filename().string();
  if (name.empty() || name == ".") name = fs::absolute(dir).lexically_normal().filename().string();
  return name.empty() ? p.filename().string() : name;
}

MetricsTail::MetricsTail(const std::string& run_dir_or_file)
    : path_(metrics_path(run_dir_or_file)) {
  metrics_.source = path_;
  metrics_.name = run_name(run_dir_or_file);
  metrics_.start_time = kNaN;
}

bool MetricsTail::poll() {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  seen_ = true;
  // Replaced (new inode) or truncated: the run was restarted; read it afresh.
  if (uint64_t(st.st_ino) != inode_ || uint64_t(st.st_size) < offset_) {
    RunMetrics fresh;
    fresh.source = metrics_.source;
    fresh.name = metrics_.name;
    fresh.start_time = kNaN;
    metrics_ = std::move(fresh);
    partial_.clear();
    offset_ = 0;
    inode_ = uint64_t(st.st_ino);
  }
  if (uint64_t(st.st_size) == offset_) return false;
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const int64_t applied_before = applied_;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof(buffer), off_t(offset_));
    if (n <= 0) break;
    offset_ += uint64_t(n);
    consume(buffer, size_t(n));
  }
  ::close(fd);
  return applied_ != applied_before;
}

void MetricsTail::consume(const char* data, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    if (data[i] != '\n') continue;
    std::string line;
    if (!partial_.empty()) {
      line = std::move(partial_);
      partial_.clear();
    }
    line.append(data + start, i - start);
    start = i + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!record.is_object()) {
      ++metrics_.bad_lines;
      continue;
    }
    apply_record(metrics_, record);
    ++applied_;
  }
  partial_.append(data + start, n - start);  // the unfinished last line, if any
}

RunMetrics load_run_metrics(const std::string& run_dir_or_file) {
  MetricsTail tail(run_dir_or_file);
  tail.poll();
  const std::string path = metrics_path(run_dir_or_file);
  if (!tail.file_seen())
    fail_input(path, "no metrics log here", "a run directory written by kiln train", "nothing");
  RunMetrics m = tail.metrics();
  if (m.empty())
    fail_input(path, "holds no run, step or eval records", "a metrics.jsonl written by kiln train",
               std::to_string(m.bad_lines) + " unreadable lines");
  return m;
}

}  // namespace kiln
