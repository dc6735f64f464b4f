// The terminal loss chart: decoded back from its braille cells, the dots are where the losses
// put them (terminal_plot.h's mapping), the line is continuous, its shape follows the curve
// (falling, V-shaped), and validation points are 'o' marks in their cells.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "mds/train/terminal_plot.h"

using mds::train::LossHistory;
using mds::train::terminal_plot;

namespace {

constexpr int kCols = 60, kRows = 15, kW = 2 * kCols, kH = 4 * kRows;

struct Decoded {
  std::vector<std::vector<bool>> dot;     // [kH][kW]
  std::vector<std::vector<bool>> marked;  // [kRows][kCols]: 'o'
  std::vector<std::string> lines;
};

// Reads the chart rows back: 10 label characters, the axis (3 bytes), then kCols cells.
Decoded decode(const std::string& chart) {
  Decoded d;
  d.dot.assign(kH, std::vector<bool>(kW, false));
  d.marked.assign(kRows, std::vector<bool>(kCols, false));
  std::istringstream in(chart);
  for (std::string l; std::getline(in, l);) d.lines.push_back(l);
  EXPECT_GE(d.lines.size(), size_t(kRows + 1));
  static const int bit_dy[8] = {0, 1, 2, 0, 1, 2, 3, 3}, bit_dx[8] = {0, 0, 0, 1, 1, 1, 0, 1};
  for (int r = 0; r < kRows && r + 1 < int(d.lines.size()); ++r) {
    const std::string& l = d.lines[r + 1];  // line 0 is the title
    size_t at = 10 + 3;
    for (int c = 0; c < kCols; ++c) {
      EXPECT_LT(at, l.size()) << "row " << r << " is short: " << l;
      if (at >= l.size()) break;
      const unsigned char b = l[at];
      if (b == ' ' || b == 'o') {
        d.marked[r][c] = b == 'o';
        at += 1;
        continue;
      }
      EXPECT_EQ(b, 0xe2) << "not a braille cell at row " << r << " col " << c;
      const uint32_t cp =
          ((b & 0x0f) << 12) | ((uint8_t(l[at + 1]) & 0x3f) << 6) | (uint8_t(l[at + 2]) & 0x3f);
      EXPECT_GE(cp, 0x2800u);
      EXPECT_LE(cp, 0x28ffu);
      for (int k = 0; k < 8; ++k)
        if ((cp - 0x2800) >> k & 1) d.dot[r * 4 + bit_dy[k]][c * 2 + bit_dx[k]] = true;
      at += 3;
    }
    EXPECT_EQ(at, l.size()) << "row " << r << " is long: " << l;
  }
  return d;
}

LossHistory curve(int n, double (*f)(int)) {
  LossHistory h;
  for (int i = 1; i <= n; ++i) h.train.push_back({i, f(i)});
  return h;
}

// The topmost dot of each dot column (-1: none).
std::vector<int> top_dots(const Decoded& d) {
  std::vector<int> top(kW, -1);
  for (int x = 0; x < kW; ++x)
    for (int y = 0; y < kH && top[x] < 0; ++y)
      if (d.dot[y][x]) top[x] = y;
  return top;
}

}  // namespace

TEST(TerminalPlot, EveryPointIsAtItsDotAndTheLineIsContinuous) {
  const LossHistory h = curve(300, [](int i) { return 2.0 + 9.0 * std::exp(-i / 60.0); });
  const Decoded d = decode(terminal_plot(h, kCols, kRows));
  double lo = 1e9, hi = -1e9;
  for (auto& p : h.train) lo = std::min(lo, p.loss), hi = std::max(hi, p.loss);
  for (auto& p : h.train) {
    const int x = int(std::lround((p.iteration - 1.0) / 299.0 * (kW - 1)));
    const int y = int(std::lround((hi - p.loss) / (hi - lo) * (kH - 1)));
    EXPECT_TRUE(d.dot[y][x]) << "iteration " << p.iteration << " loss " << p.loss;
  }
  // Continuous: every dot column has a dot, and neighbouring columns' dots touch.
  for (int x = 0; x < kW; ++x) {
    int any = 0;
    for (int y = 0; y < kH; ++y) any += d.dot[y][x];
    EXPECT_GT(any, 0) << "column " << x << " is empty";
  }
  EXPECT_TRUE(d.dot[0][0]);            // the highest loss, top left
  EXPECT_TRUE(d.dot[kH - 1][kW - 1]);  // the lowest, bottom right
}

TEST(TerminalPlot, FallingLossFallsAndAVShapeHasItsMinimumInTheMiddle) {
  const Decoded fall =
      decode(terminal_plot(curve(120, [](int i) { return 10.0 - 0.05 * i; }), kCols, kRows));
  const std::vector<int> top = top_dots(fall);
  for (int x = 1; x < kW; ++x) EXPECT_GE(top[x], top[x - 1]) << "rises at column " << x;

  const Decoded v = decode(
      terminal_plot(curve(121, [](int i) { return 3.0 + std::abs(i - 61) / 10.0; }), kCols, kRows));
  const std::vector<int> vt = top_dots(v);
  const int mid = kW / 2;
  EXPECT_TRUE(v.dot[kH - 1][mid]) << "the minimum is not at the bottom in the middle";
  for (int x = 0; x < kW; ++x)
    if (std::abs(x - mid) > 2) EXPECT_FALSE(v.dot[kH - 1][x]) << "bottom dot away from the middle";
  EXPECT_EQ(vt[0], 0);
  EXPECT_EQ(vt[kW - 1], 0);
  for (int x = 1; x <= mid; ++x) EXPECT_GE(vt[x], vt[x - 1]);
  for (int x = mid + 1; x < kW; ++x) EXPECT_LE(vt[x], vt[x - 1]);
}

TEST(TerminalPlot, ValidationPointsAreMarkedInTheirCells) {
  LossHistory h = curve(100, [](int i) { return 8.0 - 0.04 * i; });
  h.valid = {{50, 6.0}, {100, 4.2}};
  const std::string chart = terminal_plot(h, kCols, kRows);
  const Decoded d = decode(chart);
  const double lo = 4.0, hi = 7.96;  // train spans 7.96 .. 4.0; the valid points lie inside
  for (auto& p : h.valid) {
    const int x = int(std::lround((p.iteration - 1.0) / 99.0 * (kW - 1)));
    const int y = int(std::lround((hi - p.loss) / (hi - lo) * (kH - 1)));
    EXPECT_TRUE(d.marked[y / 4][x / 2]) << "no 'o' for iteration " << p.iteration;
  }
  EXPECT_NE(chart.find("o validation"), std::string::npos);
  // The axis labels: the highest loss on the first row, the lowest on the last.
  EXPECT_NE(d.lines[1].find("7.96"), std::string::npos) << d.lines[1];
  EXPECT_NE(d.lines[kRows].find("4"), std::string::npos) << d.lines[kRows];
}

TEST(TerminalPlot, NothingToDrawIsEmptyAndAFlatOrSinglePointCurveDraws) {
  EXPECT_EQ(terminal_plot({}, kCols, kRows), "");
  LossHistory one;
  one.train = {{5, 3.0}};
  EXPECT_FALSE(terminal_plot(one, kCols, kRows).empty());
  const Decoded flat = decode(terminal_plot(curve(10, [](int) { return 1.0; }), kCols, kRows));
  const std::vector<int> top = top_dots(flat);
  for (int x = 1; x < kW; ++x) EXPECT_EQ(top[x], top[0]);  // one horizontal line
}
