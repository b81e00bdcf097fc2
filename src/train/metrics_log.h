// metrics.jsonl: one JSON object per line, appended and flushed as the run goes
// (schema in the design notes: run, step, eval, sample, system, checkpoint, report).
// Each record gets "type" and "time" (Unix seconds).
#pragma once
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

namespace kiln {

class MetricsLog {
 public:
  MetricsLog() = default;
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;

  void open(const std::string& path);  // appends; creates when missing
  bool is_open() const { return file_ != nullptr; }
  void write(const std::string& type, nlohmann::json record);

 private:
  FILE* file_ = nullptr;
  std::string path_;
};

double unix_time();

}  // namespace kiln
