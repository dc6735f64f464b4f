#include "mds/train/terminal_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace mds::train {
namespace {

// Bit of dot (dx, dy) inside a braille cell (Unicode's dot numbering 1-8).
constexpr uint8_t kDotBit[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s.push_back(char(cp));
  } else if (cp < 0x800) {
    s.push_back(char(0xc0 | (cp >> 6)));
    s.push_back(char(0x80 | (cp & 0x3f)));
  } else {
    s.push_back(char(0xe0 | (cp >> 12)));
    s.push_back(char(0x80 | ((cp >> 6) & 0x3f)));
    s.push_back(char(0x80 | (cp & 0x3f)));
  }
}

std::string label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%9.4g ", v);
  return buf;
}

}  // namespace

std::string terminal_plot(const LossHistory& h, int cols, int rows) {
  if (h.train.empty() || cols < 2 || rows < 2) return "";
  const int W = 2 * cols, H = 4 * rows;
  auto [x0, x1, lo, hi] = h.bounds();
  if (hi == lo) hi += 0.5, lo -= 0.5;
  auto dot_x = [&](double it) { return int(std::lround((it - x0) / (x1 - x0) * (W - 1))); };
  auto dot_y = [&](double v) { return int(std::lround((hi - v) / (hi - lo) * (H - 1))); };

  std::vector<uint8_t> cells(size_t(cols) * rows, 0);
  auto set = [&](int x, int y) { cells[size_t(y / 4) * cols + x / 2] |= kDotBit[y % 4][x % 2]; };
  // Straight dot lines between consecutive points (Bresenham).
  int px = dot_x(double(h.train[0].iteration)), py = dot_y(h.train[0].loss);
  set(px, py);
  for (size_t i = 1; i < h.train.size(); ++i) {
    const int x = dot_x(double(h.train[i].iteration)), y = dot_y(h.train[i].loss);
    const int dx = std::abs(x - px), dy = -std::abs(y - py), sx = px < x ? 1 : -1,
              sy = py < y ? 1 : -1;
    for (int err = dx + dy;;) {
      set(px, py);
      if (px == x && py == y) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, px += sx;
      if (e2 <= dx) err += dx, py += sy;
    }
  }
  std::vector<bool> mark(cells.size(), false);
  for (const LossHistory::Point& p : h.valid)
    mark[size_t(dot_y(p.loss) / 4) * cols + dot_x(double(p.iteration)) / 2] = true;

  std::string out = "  lm loss\n";
  const int mid = rows / 2;
  for (int r = 0; r < rows; ++r) {
    const bool labelled = r == 0 || r == mid || r == rows - 1;
    const double at = r == 0 ? hi : r == rows - 1 ? lo : hi - (r * 4 + 1.5) / (H - 1) * (hi - lo);
    out += labelled ? label(at) : std::string(10, ' ');
    out += labelled ? "\u2524" : "\u2502";
    for (int c = 0; c < cols; ++c) {
      const size_t i = size_t(r) * cols + c;
      if (mark[i])
        out += 'o';
      else if (cells[i])
        append_utf8(out, 0x2800 + cells[i]);
      else
        out += ' ';
    }
    out += '\n';
  }
  out += std::string(10, ' ') + "\u2514";
  for (int c = 0; c < cols; ++c) out += "\u2500";
  out += '\n';
  const std::string first = std::to_string(int64_t(x0)), last = std::to_string(int64_t(x1));
  const std::string name = "iteration";
  std::string axis = std::string(11, ' ') + first;
  const int width = 11 + cols;
  const int name_at = 11 + (cols - int(name.size())) / 2;
  axis += std::string(std::max(1, name_at - int(axis.size())), ' ') + name;
  axis += std::string(std::max(1, width - int(axis.size()) - int(last.size())), ' ') + last;
  out += axis + '\n';
  out += std::string(11, ' ') + "\u28c0 train" + (h.valid.empty() ? "" : "   o validation") + '\n';
  return out;
}

}  // namespace mds::train
