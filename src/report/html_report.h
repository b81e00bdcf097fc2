// `kiln report`: one self-contained HTML page about one or more runs (charts
// as inline SVG drawn by Kiln, no scripts, no external references, so it
// opens offline and can be mailed around): loss and validation loss against
// steps, tokens and wall time, throughput, learning rate, grad norm, memory,
// the runs overlaid; the efficiency report, latest samples and the config.
#pragma once
#include <string>
#include <vector>

#include "report/metrics_reader.h"
#include "report/plot.h"

namespace kiln {

// The report page. `generated` is the unix time printed in its header.
std::string html_report(const std::vector<RunMetrics>& runs, double generated);

// Loss (smoothed, raw behind it, validation dashed) against optimizer steps:
// the chart --png writes.
ChartSpec loss_chart(const std::vector<RunMetrics>& runs);

// What `kiln report` does: reads the runs, writes the HTML (and the PNG of
// the loss chart when png_path is not empty) atomically.
void write_report(const std::vector<std::string>& run_dirs, const std::string& html_path,
                  const std::string& png_path);

}  // namespace kiln
