#include "core/eval/svg_chart.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/util/error.h"

namespace momentkv::eval {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

size_t count(std::string_view text, std::string_view needle) {
  size_t n = 0;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

// Opening <g> tags, with or without attributes.
size_t count_g_open(std::string_view text) {
  return count(text, "<g>") + count(text, "<g ");
}

// The label text of every <text> element, in document order.
std::vector<std::string> text_contents(const std::string& svg) {
  std::vector<std::string> out;
  for (size_t at = svg.find("<text"); at != std::string::npos; at = svg.find("<text", at + 1)) {
    const size_t begin = svg.find('>', at) + 1;
    out.push_back(svg.substr(begin, svg.find("</text>", begin) - begin));
  }
  return out;
}

bool has_label(const std::string& svg, const std::string& label) {
  for (const auto& t : text_contents(svg)) {
    if (t == label) return true;
  }
  return false;
}

// Structural checks every rendered chart must pass.
void expect_well_formed(const std::string& svg) {
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  ASSERT_GE(svg.size(), 7u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(count_g_open(svg), count(svg, "</g>"));
  EXPECT_EQ(count(svg, "<text"), count(svg, "</text>"));
  EXPECT_EQ(count(svg, "nan"), 0u);
  EXPECT_EQ(count(svg, "inf"), 0u);
}

ChartSpec three_series() {
  ChartSpec spec;
  spec.title = "Top-1 agreement vs decode budget";
  spec.x_label = "decode budget (tokens)";
  spec.y_label = "top-1 agreement";
  spec.series = {{"full", {32, 64, 128}, {1, 1, 1}},
                 {"moment", {32, 64, 128}, {0.81, 0.9, 0.97}},
                 {"h2o", {32, 64, 128}, {0.7, 0.84, 0.93}}};
  return spec;
}

TEST(SvgChart, DocumentIsWellFormedWithOnePolylinePerSeriesAndALegend) {
  const std::string svg = render_line_chart(three_series());
  expect_well_formed(svg);
  EXPECT_EQ(count(svg, "<polyline"), 3u);
  EXPECT_EQ(count(svg, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>"), 1u);
  for (const char* name : {"full", "moment", "h2o"}) EXPECT_TRUE(has_label(svg, name)) << name;
  EXPECT_TRUE(has_label(svg, "Top-1 agreement vs decode budget"));
  EXPECT_TRUE(has_label(svg, "decode budget (tokens)"));
  EXPECT_TRUE(has_label(svg, "top-1 agreement"));
}

TEST(SvgChart, TextIsXmlEscaped) {
  ChartSpec spec = three_series();
  spec.title = "KL & agreement <moment>";
  spec.series[1].name = "a<b & \"c\"";
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  EXPECT_TRUE(has_label(svg, "KL &amp; agreement &lt;moment&gt;"));
  EXPECT_TRUE(has_label(svg, "a&lt;b &amp; &quot;c&quot;"));
  EXPECT_EQ(count(svg, "<moment>"), 0u);
  EXPECT_EQ(count(svg, "a<b"), 0u);
}

TEST(SvgChart, LinearTicksAreRoundNumbers) {
  const AxisTicks t = linear_ticks(0, 0.37);
  const std::vector<std::string> want = {"0", "0.1", "0.2", "0.3", "0.4"};
  EXPECT_EQ(t.labels, want);
  ASSERT_EQ(t.values.size(), 5u);
  EXPECT_NEAR(t.values[3], 0.3, 1e-12);

  EXPECT_EQ(linear_ticks(0, 1).labels,
            (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1"}));
  EXPECT_EQ(linear_ticks(-3, 7).labels,
            (std::vector<std::string>{"-4", "-2", "0", "2", "4", "6", "8"}));
  EXPECT_EQ(linear_ticks(0, 2400000).labels.back(), "2.5M");
}

TEST(SvgChart, LinearTicksCountAndSpacingHoldForManyRanges) {
  for (double lo : {-123.4, -1.0, 0.0, 0.001, 3.0, 97.5, 1e6}) {
    for (double span : {1e-4, 0.037, 0.5, 1.0, 7.3, 10.0, 99.0, 1234.0, 5e7}) {
      const AxisTicks t = linear_ticks(lo, lo + span);
      ASSERT_GE(t.values.size(), 5u) << lo << " " << span;
      ASSERT_LE(t.values.size(), 8u) << lo << " " << span;
      EXPECT_LE(t.values.front(), lo + 1e-9 * span);
      EXPECT_GE(t.values.back(), lo + span - 1e-9 * span);
      const double step = t.values[1] - t.values[0];
      for (size_t i = 1; i < t.values.size(); ++i) {
        // Tolerance: rounding of the values themselves when |lo| >> span.
        EXPECT_NEAR(t.values[i] - t.values[i - 1], step,
                    1e-9 * step + 4e-16 * std::abs(t.values[i]));
      }
      EXPECT_EQ(std::set<std::string>(t.labels.begin(), t.labels.end()).size(), t.labels.size())
          << lo << " " << span << ": labels collide";
    }
  }
}

TEST(SvgChart, ChartTickLabelsForASmallYRange) {
  ChartSpec spec;
  spec.series = {{"kl", {0, 1, 2, 3}, {0.05, 0.37, 0.0, 0.21}}};
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  for (const char* label : {"0", "0.1", "0.2", "0.3"}) EXPECT_TRUE(has_label(svg, label)) << label;
}

TEST(SvgChart, LogTicksArePowersOfTwoForBudgets) {
  const AxisTicks t = log_ticks(32, 128);
  EXPECT_EQ(t.labels, (std::vector<std::string>{"32", "64", "128"}));

  ChartSpec spec = three_series();
  spec.log_x = true;
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  for (const char* label : {"32", "64", "128"}) EXPECT_TRUE(has_label(svg, label)) << label;
  // Equal ratios land at equal pixel distances: 32 -> 64 -> 128 are evenly spaced.
  EXPECT_EQ(count(svg, "<polyline"), 3u);
}

TEST(SvgChart, LogTicksForWideRangesStayFew) {
  EXPECT_EQ(log_ticks(10, 1000).labels,
            (std::vector<std::string>{"10", "20", "50", "100", "200", "500", "1000"}));
  const AxisTicks wide = log_ticks(1e-3, 1e9);
  EXPECT_LE(wide.values.size(), 8u);
  EXPECT_LE(wide.values.front(), 1e-3);
  EXPECT_GE(wide.values.back(), 1e9);
  EXPECT_LE(log_ticks(1, 4096).values.size(), 8u);
}

TEST(SvgChart, NonFinitePointsBreakTheLine) {
  ChartSpec spec;
  spec.series = {{"broken", {0, 1, 2, 3, 4, 5}, {1, 2, kNaN, 3, 4, 5}},
                 {"spike", {0, 1, 2, 3}, {1, kInf, 2, 3}}};
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  // "broken": runs {0,1} and {3,4,5}; "spike": a lone point {0} and the run {2,3}.
  EXPECT_EQ(count(svg, "<polyline"), 3u);
}

TEST(SvgChart, NonPositiveXIsSkippedOnALogAxis) {
  ChartSpec spec;
  spec.log_x = true;
  spec.series = {{"s", {0, 32, 64, 128}, {0.5, 0.6, 0.7, 0.8}}};
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  EXPECT_EQ(count(svg, "<polyline"), 1u);
  EXPECT_FALSE(has_label(svg, "0"));
}

TEST(SvgChart, SinglePointAndFlatSeriesGetAPaddedRange) {
  ChartSpec one;
  one.series = {{"one", {64}, {0.5}}};
  std::string svg = render_line_chart(one);
  expect_well_formed(svg);
  EXPECT_EQ(count(svg, "<polyline"), 0u);
  EXPECT_GE(count(svg, "<circle"), 2u);  // the point and its legend marker

  ChartSpec flat;
  flat.series = {{"flat", {1, 2, 3}, {0, 0, 0}}, {"flat1", {1, 2, 3}, {1, 1, 1}}};
  svg = render_line_chart(flat);
  expect_well_formed(svg);
  EXPECT_EQ(count(svg, "<polyline"), 2u);

  ChartSpec empty;
  empty.title = "nothing yet";
  svg = render_line_chart(empty);
  expect_well_formed(svg);
  EXPECT_EQ(count(svg, "<polyline"), 0u);
}

TEST(SvgChart, FixedYRangeKeepsTicksInside) {
  ChartSpec spec = three_series();
  spec.y_min = 0;
  spec.y_max = 1;
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  for (const char* label : {"0", "0.2", "0.4", "0.6", "0.8", "1"}) {
    EXPECT_TRUE(has_label(svg, label)) << label;
  }
  EXPECT_FALSE(has_label(svg, "1.2"));
}

TEST(SvgChart, TwelveSeriesHaveDistinctStyles) {
  ChartSpec spec;
  for (int k = 0; k < 12; ++k) {
    std::string name = "s";
    name.append(std::to_string(k));
    spec.series.push_back({name, {1, 2, 3}, {1.0 * k, 1.0 * k + 1, 2.0 * k}});
  }
  const std::string svg = render_line_chart(spec);
  expect_well_formed(svg);
  ASSERT_EQ(count(svg, "<polyline"), 12u);
  std::set<std::string> styles;
  for (size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1)) {
    const size_t colour = svg.find("stroke=\"", at) + 8;
    std::string style = svg.substr(colour, 7);
    const size_t end = svg.find("/>", at);
    const size_t dash = svg.find("stroke-dasharray=\"", at);
    if (dash < end) style += svg.substr(dash, svg.find('"', dash + 18) - dash);
    styles.insert(style);
  }
  EXPECT_EQ(styles.size(), 12u);
}

TEST(SvgChart, RejectsMismatchedSeriesAndTinyCanvas) {
  ChartSpec spec;
  spec.series = {{"bad", {1, 2, 3}, {1, 2}}};
  EXPECT_THROW(render_line_chart(spec), Error);
  ChartSpec tiny = three_series();
  tiny.width = 100;
  EXPECT_THROW(render_line_chart(tiny), Error);
  ChartSpec inverted = three_series();
  inverted.y_min = 1;
  inverted.y_max = 0;
  EXPECT_THROW(render_line_chart(inverted), Error);
}

}  // namespace
}  // namespace momentkv::eval
