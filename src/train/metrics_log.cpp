#include "train/metrics_log.h"

#include <chrono>

#include "core/error.h"

namespace kiln {

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::open(const std::string& path) {
  path_ = path;
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) fail_runtime(path, "cannot open the metrics log for appending");
}

void MetricsLog::write(const std::string& type, nlohmann::json record) {
  if (!file_) return;
  nlohmann::json line = {{"type", type}, {"time", unix_time()}};
  line.update(record);
  const std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size() || std::fflush(file_) != 0)
    fail_runtime(path_, "cannot write the metrics log (disk full?)");
}

}  // namespace kiln
