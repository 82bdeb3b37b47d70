#include "core/eval/svg_chart.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string_view>
#include <tuple>
#include <utility>

#include "core/util/error.h"

namespace momentkv::eval {
namespace {

// Eight hues that stay apart on white (and mostly for colour-blind readers); series 9-16 reuse
// them dashed with square markers, 17-24 dotted with triangles.
constexpr std::array<std::string_view, 8> kPalette = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                      "#9467bd", "#8c564b", "#e377c2", "#17becf"};
constexpr std::array<std::string_view, 3> kDash = {"", "7 4", "2 3"};

constexpr double kTitleFont = 16, kLabelFont = 13, kTickFont = 11, kLegendFont = 12;
constexpr double kInset = 6;        // px between the frame and the outermost tick/data position
constexpr double kTickLen = 5;      // px
constexpr double kLegendRow = 18;   // px per legend entry
constexpr size_t kMaxMarkers = 60;  // more points than this per series: the line alone

template <typename... Parts>
void cat(std::string& out, const Parts&... parts) {
  (out.append(std::string_view(parts)), ...);
}

// Pixel coordinates: one decimal is finer than any screen needs and keeps files small.
std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out.append("&amp;");
        break;
      case '<':
        out.append("&lt;");
        break;
      case '>':
        out.append("&gt;");
        break;
      case '"':
        out.append("&quot;");
        break;
      case '\'':
        out.append("&apos;");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// Number of UTF-8 code points.
size_t n_chars(std::string_view s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Estimated rendered width of sans-serif text (no font metrics available here).
double text_width(std::string_view s, double font) {
  return 0.58 * font * static_cast<double>(n_chars(s));
}

// `s` cut to at most `max_chars` code points, with an ellipsis when cut.
std::string truncate(const std::string& s, size_t max_chars) {
  if (n_chars(s) <= max_chars || max_chars < 2) return s;
  size_t n = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (n == max_chars - 1) break;
      ++n;
    }
  }
  std::string out = s.substr(0, i);
  out.append("\u2026");
  return out;
}

// A tick value as text: k/M/G for large axes, otherwise `decimals` places.
std::string linear_label(double v, int decimals, double scale, std::string_view suffix) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v / scale);
  std::string out = buf;
  if (out.find('.') != std::string::npos) {  // "1.50" -> "1.5", "1.0" -> "1"
    out.erase(out.find_last_not_of('0') + 1);
    if (out.back() == '.') out.pop_back();
  }
  if (out == "-0" || out == "0") return "0";  // no "-0" or "0k"
  out.append(suffix);
  return out;
}

std::string log_label(double v) {
  char buf[48];
  if (v >= 1 && v < 1e6 && std::abs(v - std::round(v)) < 1e-9 * v) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%g", v);
  }
  return buf;
}

// Where data values land in pixels on one axis.
struct AxisMap {
  double lo, hi;  // data range shown
  double p0, p1;  // pixel positions of lo and hi
  bool log = false;
  double operator()(double v) const {
    const double t =
        log ? (std::log(v) - std::log(lo)) / (std::log(hi) - std::log(lo)) : (v - lo) / (hi - lo);
    return p0 + t * (p1 - p0);
  }
};

bool point_ok(double x, double y, bool log_x) {
  return std::isfinite(x) && std::isfinite(y) && (!log_x || x > 0);
}

// A non-degenerate range around [lo, hi]: a single value gets padded on both sides.
std::pair<double, double> pad_range(double lo, double hi, bool log) {
  if (hi > lo) return {lo, hi};
  if (log) return {lo / 2, lo * 2};
  const double d = lo != 0 ? std::abs(lo) * 0.1 : 1.0;
  return {lo - d, lo + d};
}

void draw_marker(std::string& out, int shape, double x, double y, std::string_view colour) {
  if (shape == 0) {
    cat(out, "<circle cx=\"", px(x), "\" cy=\"", px(y), "\" r=\"3.5\" fill=\"", colour,
        "\" stroke=\"white\" stroke-width=\"1\"/>\n");
  } else if (shape == 1) {
    cat(out, "<rect x=\"", px(x - 3), "\" y=\"", px(y - 3), "\" width=\"6\" height=\"6\" fill=\"",
        colour, "\" stroke=\"white\" stroke-width=\"1\"/>\n");
  } else {
    cat(out, "<polygon points=\"", px(x), ",", px(y - 4), " ", px(x - 3.6), ",", px(y + 2.8), " ",
        px(x + 3.6), ",", px(y + 2.8), "\" fill=\"", colour,
        "\" stroke=\"white\" stroke-width=\"1\"/>\n");
  }
}

}  // namespace

AxisTicks linear_ticks(double lo, double hi) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo < hi,
        "linear_ticks: need finite lo < hi, got [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
  constexpr std::array<double, 4> kMantissa = {1, 2, 2.5, 5};
  // Start at a step far too fine and widen until at most 8 ticks cover [lo, hi]; each widening is
  // at most 2x, so the first that fits leaves at least 5.
  int exponent = static_cast<int>(std::floor(std::log10(hi - lo))) - 2;
  for (;; ++exponent) {
    for (double m : kMantissa) {
      const double step = m * std::pow(10.0, exponent);
      const double first = std::floor(lo / step + 1e-9);
      const double last = std::ceil(hi / step - 1e-9);
      if (last - first + 1 > 8) continue;
      int decimals = std::max(0, -exponent) + (m == 2.5 && exponent <= 0 ? 1 : 0);
      const double top = std::max(std::abs(first * step), std::abs(last * step));
      double scale = 1;
      std::string_view suffix;
      if (top >= 1e9) {
        scale = 1e9, suffix = "G";
      } else if (top >= 1e6) {
        scale = 1e6, suffix = "M";
      } else if (top >= 1e5) {
        scale = 1e3, suffix = "k";
      }
      if (scale > 1) {
        decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step / scale) - 1e-9)));
        if (m == 2.5) ++decimals;
      }
      AxisTicks t;
      for (double i = first; i <= last; ++i) {
        const double v = std::abs(i) < 0.5 ? 0.0 : i * step;
        t.values.push_back(v);
        t.labels.push_back(linear_label(v, decimals, scale, suffix));
      }
      return t;
    }
  }
}

AxisTicks log_ticks(double lo, double hi) {
  check(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo < hi,
        "log_ticks: need finite 0 < lo < hi, got [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
  AxisTicks t;
  auto add = [&t](double v) {
    t.values.push_back(v);
    t.labels.push_back(log_label(v));
  };
  const int a2 = static_cast<int>(std::floor(std::log2(lo) + 1e-9));
  const int b2 = static_cast<int>(std::ceil(std::log2(hi) - 1e-9));
  // Budgets and context sizes are powers of two and read best on such ticks; other ranges of
  // two decades or more read best on decimal ticks.
  const bool pow2_ends =
      std::exp2(std::round(std::log2(lo))) == lo && std::exp2(std::round(std::log2(hi))) == hi;
  if (b2 - a2 + 1 <= 8 && (pow2_ends || hi / lo < 100)) {
    for (int e = a2; e <= b2; ++e) add(std::ldexp(1.0, e));
    return t;
  }
  const int a10 = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  const int b10 = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  if (b10 - a10 <= 2) {  // 1-2-5 steps, trimmed to the enclosing pair around [lo, hi]
    std::vector<double> all;
    for (int e = a10; e <= b10; ++e) {
      for (double m : {1.0, 2.0, 5.0}) all.push_back(m * std::pow(10.0, e));
    }
    size_t first = 0, last = all.size() - 1;
    while (first + 1 < all.size() && all[first + 1] <= lo * (1 + 1e-9)) ++first;
    while (last > first && all[last - 1] >= hi * (1 - 1e-9)) --last;
    for (size_t i = first; i <= last; ++i) add(all[i]);
    return t;
  }
  const int stride = (b10 - a10 + 8) / 8;  // at most 8 ticks
  for (int e = a10;; e += stride) {
    add(std::pow(10.0, e));
    if (e >= b10) break;
  }
  return t;
}

std::string render_line_chart(const ChartSpec& spec) {
  check(spec.width >= 160 && spec.height >= 120,
        "render_line_chart: size " + std::to_string(spec.width) + "x" +
            std::to_string(spec.height) + " is below 160x120");
  for (const auto& s : spec.series) {
    check(s.x.size() == s.y.size(), "render_line_chart: series '" + s.name + "' has " +
                                        std::to_string(s.x.size()) + " x and " +
                                        std::to_string(s.y.size()) + " y values");
  }
  check(!spec.y_min || std::isfinite(*spec.y_min), "render_line_chart: y_min is not finite");
  check(!spec.y_max || std::isfinite(*spec.y_max), "render_line_chart: y_max is not finite");
  check(!spec.y_min || !spec.y_max || *spec.y_min < *spec.y_max,
        "render_line_chart: y_min must be below y_max");

  // Data ranges over the drawable points.
  constexpr double kInf = std::numeric_limits<double>::infinity();
  double x_lo = kInf, x_hi = -kInf, y_lo = kInf, y_hi = -kInf;
  for (const auto& s : spec.series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!point_ok(s.x[i], s.y[i], spec.log_x)) continue;
      x_lo = std::min(x_lo, s.x[i]), x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]), y_hi = std::max(y_hi, s.y[i]);
    }
  }
  if (x_lo > x_hi) {  // nothing to draw: empty axes
    x_lo = spec.log_x ? 1 : 0, x_hi = spec.log_x ? 10 : 1;
    y_lo = 0, y_hi = 1;
  }
  std::tie(x_lo, x_hi) = pad_range(x_lo, x_hi, spec.log_x);
  const AxisTicks x_ticks = spec.log_x ? log_ticks(x_lo, x_hi) : linear_ticks(x_lo, x_hi);
  x_lo = x_ticks.values.front(), x_hi = x_ticks.values.back();

  if (spec.y_min) y_lo = *spec.y_min;
  if (spec.y_max) y_hi = *spec.y_max;
  if (y_hi <= y_lo) {
    if (spec.y_max) {
      y_lo = y_hi - (y_hi != 0 ? std::abs(y_hi) * 0.1 : 1.0);
    } else if (spec.y_min) {
      y_hi = y_lo + (y_lo != 0 ? std::abs(y_lo) * 0.1 : 1.0);
    } else {
      std::tie(y_lo, y_hi) = pad_range(y_lo, y_hi, false);
    }
  }
  AxisTicks y_ticks;
  {
    const AxisTicks all = linear_ticks(y_lo, y_hi);
    if (!spec.y_min) y_lo = all.values.front();
    if (!spec.y_max) y_hi = all.values.back();
    const double eps = (y_hi - y_lo) * 1e-9;
    for (size_t i = 0; i < all.values.size(); ++i) {
      if (all.values[i] < y_lo - eps || all.values[i] > y_hi + eps) continue;
      y_ticks.values.push_back(all.values[i]);
      y_ticks.labels.push_back(all.labels[i]);
    }
  }

  // Layout, outside in: title on top, y label and tick labels on the left, x tick labels and
  // label below, legend to the right of the plot.
  const double width = spec.width, height = spec.height;
  double y_label_w = 0;
  for (const auto& l : y_ticks.labels) y_label_w = std::max(y_label_w, text_width(l, kTickFont));
  const double left = 10 + (spec.y_label.empty() ? 0 : 22) + y_label_w + kTickLen + 4;
  const double top = spec.title.empty() ? 16 : 44;
  const double bottom = height - (spec.x_label.empty() ? 28 : 48);

  std::vector<std::string> legend_names;
  double legend_text_w = 0;
  if (!spec.series.empty()) {
    const double max_text_w = std::max(40.0, 0.32 * width - 50);
    const auto max_chars = static_cast<size_t>(max_text_w / (0.58 * kLegendFont));
    for (const auto& s : spec.series) {
      legend_names.push_back(truncate(s.name, max_chars));
      legend_text_w = std::max(legend_text_w, text_width(legend_names.back(), kLegendFont));
    }
  }
  const double legend_w = legend_names.empty() ? 0 : 8 + 24 + 6 + legend_text_w + 8;
  const double last_x_label_half = text_width(x_ticks.labels.back(), kTickFont) / 2;
  double right = width - std::max(last_x_label_half + 6, 14.0);
  if (legend_w > 0) right = width - 10 - legend_w - 14;
  right = std::max(right, left + 20);
  const double plot_bottom = std::max(bottom, top + 20);

  const AxisMap map_x{x_lo, x_hi, left + kInset, right - kInset, spec.log_x};
  const AxisMap map_y{y_lo, y_hi, plot_bottom - kInset, top + kInset, false};

  std::string out;
  cat(out, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", std::to_string(spec.width),
      "\" height=\"", std::to_string(spec.height), "\" viewBox=\"0 0 ", std::to_string(spec.width),
      " ", std::to_string(spec.height),
      "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n");
  if (!spec.title.empty()) cat(out, "<title>", xml_escape(spec.title), "</title>\n");
  cat(out, "<defs><clipPath id=\"plot-area\"><rect x=\"", px(left), "\" y=\"", px(top),
      "\" width=\"", px(right - left), "\" height=\"", px(plot_bottom - top),
      "\"/></clipPath></defs>\n");
  cat(out, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  if (!spec.title.empty()) {
    cat(out, "<text x=\"", px(width / 2), "\" y=\"26\" text-anchor=\"middle\" font-size=\"",
        px(kTitleFont), "\" font-weight=\"bold\" fill=\"#222\">", xml_escape(spec.title),
        "</text>\n");
  }

  // Grid lines under everything else.
  cat(out, "<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
  for (double v : x_ticks.values) {
    const std::string x = px(map_x(v));
    cat(out, "<line x1=\"", x, "\" y1=\"", px(top), "\" x2=\"", x, "\" y2=\"", px(plot_bottom),
        "\"/>\n");
  }
  for (double v : y_ticks.values) {
    const std::string y = px(map_y(v));
    cat(out, "<line x1=\"", px(left), "\" y1=\"", y, "\" x2=\"", px(right), "\" y2=\"", y,
        "\"/>\n");
  }
  cat(out, "</g>\n");

  // Frame, tick marks and tick labels.
  cat(out, "<g stroke=\"#444\" stroke-width=\"1\" fill=\"none\">\n");
  cat(out, "<rect x=\"", px(left), "\" y=\"", px(top), "\" width=\"", px(right - left),
      "\" height=\"", px(plot_bottom - top), "\"/>\n");
  for (double v : x_ticks.values) {
    const std::string x = px(map_x(v));
    cat(out, "<line x1=\"", x, "\" y1=\"", px(plot_bottom), "\" x2=\"", x, "\" y2=\"",
        px(plot_bottom + kTickLen), "\"/>\n");
  }
  for (double v : y_ticks.values) {
    const std::string y = px(map_y(v));
    cat(out, "<line x1=\"", px(left - kTickLen), "\" y1=\"", y, "\" x2=\"", px(left), "\" y2=\"", y,
        "\"/>\n");
  }
  cat(out, "</g>\n");
  cat(out, "<g font-size=\"", px(kTickFont), "\" fill=\"#333\">\n");
  for (size_t i = 0; i < x_ticks.values.size(); ++i) {
    cat(out, "<text x=\"", px(map_x(x_ticks.values[i])), "\" y=\"",
        px(plot_bottom + kTickLen + kTickFont + 2), "\" text-anchor=\"middle\">",
        xml_escape(x_ticks.labels[i]), "</text>\n");
  }
  for (size_t i = 0; i < y_ticks.values.size(); ++i) {
    cat(out, "<text x=\"", px(left - kTickLen - 3), "\" y=\"", px(map_y(y_ticks.values[i]) + 4),
        "\" text-anchor=\"end\">", xml_escape(y_ticks.labels[i]), "</text>\n");
  }
  cat(out, "</g>\n");

  // Axis labels.
  if (!spec.x_label.empty()) {
    cat(out, "<text x=\"", px((left + right) / 2), "\" y=\"", px(height - 12),
        "\" text-anchor=\"middle\" font-size=\"", px(kLabelFont), "\" fill=\"#222\">",
        xml_escape(spec.x_label), "</text>\n");
  }
  if (!spec.y_label.empty()) {
    const std::string cx = px(10 + kLabelFont), cy = px((top + plot_bottom) / 2);
    cat(out, "<text x=\"", cx, "\" y=\"", cy, "\" transform=\"rotate(-90 ", cx, " ", cy,
        ")\" text-anchor=\"middle\" font-size=\"", px(kLabelFont), "\" fill=\"#222\">",
        xml_escape(spec.y_label), "</text>\n");
  }

  // Series: one polyline per unbroken run of at least two points, markers on top.
  for (size_t k = 0; k < spec.series.size(); ++k) {
    const ChartSeries& s = spec.series[k];
    const std::string_view colour = kPalette[k % kPalette.size()];
    const size_t group = (k / kPalette.size()) % kDash.size();
    cat(out, "<g clip-path=\"url(#plot-area)\">\n<title>", xml_escape(s.name), "</title>\n");
    std::vector<std::pair<double, double>> run, isolated, all;
    auto flush = [&] {
      if (run.size() == 1) isolated.push_back(run[0]);
      if (run.size() >= 2) {
        cat(out, "<polyline fill=\"none\" stroke=\"", colour,
            "\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\"");
        if (!kDash[group].empty()) cat(out, " stroke-dasharray=\"", kDash[group], "\"");
        cat(out, " points=\"");
        for (size_t i = 0; i < run.size(); ++i) {
          if (i > 0) out.push_back(' ');
          cat(out, px(run[i].first), ",", px(run[i].second));
        }
        cat(out, "\"/>\n");
      }
      run.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!point_ok(s.x[i], s.y[i], spec.log_x)) {
        flush();
        continue;
      }
      run.emplace_back(map_x(s.x[i]), map_y(s.y[i]));
      all.push_back(run.back());
    }
    flush();
    // Many points make markers a smear; a lone point is invisible without one.
    for (const auto& [x, y] : all.size() <= kMaxMarkers ? all : isolated) {
      draw_marker(out, static_cast<int>(group), x, y, colour);
    }
    cat(out, "</g>\n");
  }

  // Legend box.
  if (!legend_names.empty()) {
    const double lx = right + 14, ly = top;
    const double lh = 8 + kLegendRow * static_cast<double>(legend_names.size()) + 4;
    cat(out, "<g font-size=\"", px(kLegendFont), "\">\n");
    cat(out, "<rect x=\"", px(lx), "\" y=\"", px(ly), "\" width=\"", px(legend_w), "\" height=\"",
        px(lh), "\" fill=\"white\" stroke=\"#bbb\" rx=\"3\"/>\n");
    for (size_t k = 0; k < legend_names.size(); ++k) {
      const std::string_view colour = kPalette[k % kPalette.size()];
      const size_t group = (k / kPalette.size()) % kDash.size();
      const double cy = ly + 8 + kLegendRow * (static_cast<double>(k) + 0.5);
      cat(out, "<line x1=\"", px(lx + 8), "\" y1=\"", px(cy), "\" x2=\"", px(lx + 32), "\" y2=\"",
          px(cy), "\" stroke=\"", colour, "\" stroke-width=\"2\"");
      if (!kDash[group].empty()) cat(out, " stroke-dasharray=\"", kDash[group], "\"");
      cat(out, "/>\n");
      draw_marker(out, static_cast<int>(group), lx + 20, cy, colour);
      cat(out, "<text x=\"", px(lx + 38), "\" y=\"", px(cy + 4), "\" fill=\"#222\">",
          xml_escape(legend_names[k]), "</text>\n");
    }
    cat(out, "</g>\n");
  }
  cat(out, "</svg>\n");
  return out;
}

}  // namespace momentkv::eval
