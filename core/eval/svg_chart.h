// Standalone SVG line charts for `momentkv eval` (fidelity vs budget, KL vs position). No
// dependencies: the output is one self-contained SVG document a browser or rsvg-convert renders.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace momentkv::eval {

// One line on a chart. x and y have the same length; non-finite points (and x <= 0 on a log
// axis) are skipped and break the line.
struct ChartSeries {
  std::string name;
  std::vector<double> x, y;
};

// What to draw. y_min / y_max fix the y range (otherwise it is fitted to the data and rounded out
// to nice ticks); width and height are in pixels.
struct ChartSpec {
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;
  bool log_x = false;
  std::optional<double> y_min, y_max;
  int width = 720, height = 440;
};

// Tick positions on one axis with their labels (same length).
struct AxisTicks {
  std::vector<double> values;
  std::vector<std::string> labels;
};

// 5-8 round ticks (steps 1, 2, 2.5, 5 x 10^k) whose first is <= lo and last >= hi; lo < hi, both
// finite.
AxisTicks linear_ticks(double lo, double hi);

// Powers of 2 (span up to 8 ticks), else 1-2-5 or powers of 10, the first <= lo and the last
// >= hi; 0 < lo < hi, both finite.
AxisTicks log_ticks(double lo, double hi);

// The complete SVG document (starts with "<svg", ends with "</svg>\n"); throws Error when a
// series has x and y of different lengths or the size is too small to draw (< 160 x 120).
std::string render_line_chart(const ChartSpec& spec);

}  // namespace momentkv::eval
