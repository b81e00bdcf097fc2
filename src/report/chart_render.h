// Drawing a ChartSpec into a file format: inline SVG for the HTML report, and
// an RGB raster for `kiln report --png`. Both use the same axes, ticks and
// palette (plot.h), so the PNG looks like the report's chart.
#pragma once
#include <string>

#include "report/plot.h"
#include "report/png.h"

namespace kiln {

// Escapes & < > " ' for HTML/SVG text and attribute values.
std::string html_escape(const std::string& text);

// An <svg> element (no external references); `id` keeps clip-path ids unique in a page.
std::string svg_chart(const ChartSpec& spec, int width, int height, const std::string& id);

// The chart on a white raster with 5x7-pixel labels and a legend.
RgbImage raster_chart(const ChartSpec& spec, int width, int height);

}  // namespace kiln
