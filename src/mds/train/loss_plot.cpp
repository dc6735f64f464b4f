#include "mds/train/loss_plot.h"

#include <cairo.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "mds/core/error.h"

namespace mds::train {
namespace {

struct Rgb {
  double r, g, b;
};
constexpr Rgb kTrain{0.12, 0.47, 0.71}, kValid{1.0, 0.50, 0.05}, kGrid{0.88, 0.88, 0.88},
    kInk{0.15, 0.15, 0.15};

void color(cairo_t* cr, Rgb c) {
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
}

std::string tick_label(double v, double step) {
  // As many decimals as the step needs: 0.5 -> "7.5", 2 -> "8", 1000 -> "1000".
  const int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

void text_at(cairo_t* cr, const std::string& s, double x, double y, double align_x,
             double align_y) {
  cairo_text_extents_t e;
  cairo_text_extents(cr, s.c_str(), &e);
  cairo_move_to(cr, x - e.x_bearing - e.width * align_x, y - e.y_bearing - e.height * align_y);
  cairo_show_text(cr, s.c_str());
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(1, count);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

void write_loss_png(const std::string& path, const LossHistory& h, const PlotOptions& o) {
  if (h.train.empty()) return;
  auto [x0, x1, lo, hi] = h.bounds();
  const double pad = hi > lo ? 0.05 * (hi - lo) : 0.5, xpad = 0.015 * (x1 - x0);
  lo -= pad, hi += pad;
  x0 -= xpad, x1 += xpad;  // room for the markers at the ends

  cairo_surface_t* surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, o.width, o.height);
  cairo_t* cr = cairo_create(surface);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);

  // The plot area, inside margins for the labels.
  const double left = 80, right = o.width - 24.0, top = 48, bottom = o.height - 64.0;
  auto px = [&](double it) { return left + (it - x0) / (x1 - x0) * (right - left); };
  auto py = [&](double v) { return bottom - (v - lo) / (hi - lo) * (bottom - top); };

  // Grid and ticks.
  cairo_set_font_size(cr, 13);
  cairo_set_line_width(cr, 1);
  const std::vector<double> yt = nice_ticks(lo, hi, 6), xt = nice_ticks(x0, x1, 8);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1, xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double v : yt) {
    color(cr, kGrid);
    cairo_move_to(cr, left, std::round(py(v)) + 0.5);
    cairo_line_to(cr, right, std::round(py(v)) + 0.5);
    cairo_stroke(cr);
    color(cr, kInk);
    cairo_move_to(cr, left - 6, std::round(py(v)) + 0.5);
    cairo_line_to(cr, left, std::round(py(v)) + 0.5);
    cairo_stroke(cr);
    text_at(cr, tick_label(v, ystep), left - 10, py(v), 1.0, 0.5);
  }
  for (double v : xt) {
    if (v < x0 - 1e-9) continue;
    color(cr, kGrid);
    cairo_move_to(cr, std::round(px(v)) + 0.5, top);
    cairo_line_to(cr, std::round(px(v)) + 0.5, bottom);
    cairo_stroke(cr);
    color(cr, kInk);
    cairo_move_to(cr, std::round(px(v)) + 0.5, bottom);
    cairo_line_to(cr, std::round(px(v)) + 0.5, bottom + 6);
    cairo_stroke(cr);
    text_at(cr, tick_label(v, xstep), px(v), bottom + 10, 0.5, 0.0);
  }
  // Axes.
  color(cr, kInk);
  cairo_set_line_width(cr, 1.5);
  cairo_move_to(cr, left, top);
  cairo_line_to(cr, left, bottom);
  cairo_line_to(cr, right, bottom);
  cairo_stroke(cr);
  cairo_set_font_size(cr, 14);
  text_at(cr, "iteration", (left + right) / 2, o.height - 22.0, 0.5, 0.0);
  cairo_save(cr);
  cairo_translate(cr, 18, (top + bottom) / 2);
  cairo_rotate(cr, -M_PI / 2);
  text_at(cr, "lm loss", 0, 0, 0.5, 0.5);
  cairo_restore(cr);
  cairo_set_font_size(cr, 17);
  text_at(cr, o.title, (left + right) / 2, 16, 0.5, 0.0);

  // The curves, clipped to the plot area.
  cairo_save(cr);
  cairo_rectangle(cr, left, top, right - left, bottom - top);
  cairo_clip(cr);
  color(cr, kTrain);
  cairo_set_line_width(cr, 2);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  cairo_move_to(cr, px(double(h.train[0].iteration)), py(h.train[0].loss));
  for (const LossHistory::Point& p : h.train)
    cairo_line_to(cr, px(double(p.iteration)), py(p.loss));
  cairo_stroke(cr);
  if (!h.valid.empty()) {
    color(cr, kValid);
    const double dash[] = {6, 4};
    cairo_set_dash(cr, dash, 2, 0);
    cairo_move_to(cr, px(double(h.valid[0].iteration)), py(h.valid[0].loss));
    for (const LossHistory::Point& p : h.valid)
      cairo_line_to(cr, px(double(p.iteration)), py(p.loss));
    cairo_stroke(cr);
    cairo_set_dash(cr, nullptr, 0, 0);
    for (const LossHistory::Point& p : h.valid) {
      cairo_arc(cr, px(double(p.iteration)), py(p.loss), 5, 0, 2 * M_PI);
      cairo_fill(cr);
    }
  }
  cairo_restore(cr);

  // Legend, top right.
  cairo_set_font_size(cr, 13);
  const double lx = right - 150, ly = top + 16;
  color(cr, kTrain);
  cairo_set_line_width(cr, 2);
  cairo_move_to(cr, lx, ly);
  cairo_line_to(cr, lx + 24, ly);
  cairo_stroke(cr);
  color(cr, kInk);
  text_at(cr, "train", lx + 32, ly, 0.0, 0.5);
  if (!h.valid.empty()) {
    color(cr, kValid);
    cairo_arc(cr, lx + 12, ly + 22, 5, 0, 2 * M_PI);
    cairo_fill(cr);
    color(cr, kInk);
    text_at(cr, "validation", lx + 32, ly + 22, 0.0, 0.5);
  }

  cairo_destroy(cr);
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  const cairo_status_t status = cairo_surface_write_to_png(surface, path.c_str());
  cairo_surface_destroy(surface);
  MDS_CHECK(status == CAIRO_STATUS_SUCCESS, "cannot write the loss plot {}: {}", path,
            cairo_status_to_string(status));
}

}  // namespace mds::train
