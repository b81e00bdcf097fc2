// Reading a run's metrics.jsonl (schema in the design notes) while it is being
// written: MetricsTail remembers how far it has read and parses only whole
// lines, so a half-written last line is kept for the next poll instead of
// being reported as bad. Every field is optional (a partial or older run may
// lack any of them; missing numbers are NaN), unknown record types are
// ignored, and a line that is not JSON is counted, never fatal.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln {

struct StepPoint {
  int64_t step = 0;
  double time = 0, tokens = 0, loss = 0, lr = 0, grad_norm = 0, ms = 0, tok_s = 0, tflops = 0;
};
struct EvalPoint {
  int64_t step = 0;
  double time = 0, val_loss = 0;
};
struct SampleRecord {
  int64_t step = 0;
  double time = 0;
  std::string prompt, text;
};
struct SystemPoint {
  double time = 0, cpu_pct = 0, rss_mb = 0, gpu_util = 0, gpu_mem_mb = 0, power_w = 0;
  double gpu_power_w = 0, cpu_power_w = 0;
};

// Everything read so far from one run.
struct RunMetrics {
  std::string source;     // the metrics.jsonl path
  std::string name;       // the run directory's name, for legends
  nlohmann::json run;     // the latest "run" record (config, model, device, ...), null until seen
  nlohmann::json report;  // the latest "report" record, null until the run has finished
  std::vector<StepPoint> steps;  // ascending step; a resumed run replaces what it re-did
  std::vector<EvalPoint> evals;
  std::vector<SampleRecord> samples;
  std::vector<SystemPoint> system;
  std::vector<nlohmann::json> checkpoints;
  double start_time = 0;  // time of the first record (NaN before any)
  int64_t bad_lines = 0;  // complete lines that were not a JSON object

  int64_t planned_steps() const;  // run.config.steps, 0 when unknown
  double peak_tflops() const;     // run.peak_tflops (or report's), NaN when unknown
  bool empty() const { return run.is_null() && steps.empty() && evals.empty(); }
};

// Applies one parsed record to `m`; records of unknown type are ignored.
void apply_record(RunMetrics& m, const nlohmann::json& record);

// Incremental reader of one metrics.jsonl. Construct with a run directory or
// the file itself; the file may not exist yet (a run that has not started).
class MetricsTail {
 public:
  explicit MetricsTail(const std::string& run_dir_or_file);

  // Reads whatever was appended since the last call. Returns true when at
  // least one record was applied. A file that shrank or was replaced is read
  // again from the start.
  bool poll();
  bool file_seen() const { return seen_; }
  const RunMetrics& metrics() const { return metrics_; }

 private:
  void consume(const char* data, size_t n);
  RunMetrics metrics_;
  std::string path_, partial_;
  uint64_t offset_ = 0, inode_ = 0;
  int64_t applied_ = 0;  // records applied so far
  bool seen_ = false;
};

// The metrics.jsonl path for a run directory (or the path itself when it
// names a file), and the name used for the run in legends.
std::string metrics_path(const std::string& run_dir_or_file);
std::string run_name(const std::string& run_dir_or_file);

// Reads a whole run at once; InputError when the file is missing or holds no records.
RunMetrics load_run_metrics(const std::string& run_dir_or_file);

}  // namespace kiln
