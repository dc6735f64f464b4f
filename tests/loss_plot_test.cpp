// The loss-curve PNG: cairo writes a real PNG of the requested size, read back here through
// cairo's own PNG reader (libpng underneath), not blank, with the training line's colour
// falling from left to right as the loss does and validation points in their colour. (The e2e
// test also decodes a run's PNG with Python's PIL.) Tick placement at round values.
#include <gtest/gtest.h>

#include <cairo.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "mds/core/error.h"
#include "mds/train/loss_plot.h"

using namespace mds::train;

namespace {

struct Image {
  int w = 0, h = 0;
  std::vector<uint32_t> px;  // 0x00RRGGBB
  uint32_t at(int x, int y) const { return px[size_t(y) * w + x] & 0xffffff; }
};

Image read_png(const std::string& path) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(path.c_str());
  EXPECT_EQ(cairo_surface_status(s), CAIRO_STATUS_SUCCESS) << path;
  Image im;
  im.w = cairo_image_surface_get_width(s);
  im.h = cairo_image_surface_get_height(s);
  const int stride = cairo_image_surface_get_stride(s);
  const unsigned char* data = cairo_image_surface_get_data(s);
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x)
      im.px.push_back(*reinterpret_cast<const uint32_t*>(data + y * stride + x * 4));
  cairo_surface_destroy(s);
  return im;
}

// The training line's blue (0.12, 0.47, 0.71), give or take antialiasing at its centre.
bool train_blue(uint32_t c) {
  const int r = c >> 16 & 255, g = c >> 8 & 255, b = c & 255;
  return std::abs(r - 31) < 12 && std::abs(g - 120) < 14 && std::abs(b - 181) < 14;
}
bool valid_orange(uint32_t c) {
  const int r = c >> 16 & 255, g = c >> 8 & 255, b = c & 255;
  return r > 240 && std::abs(g - 128) < 14 && b < 30;
}

std::string temp_png(const char* name) {
  return (std::filesystem::temp_directory_path() /
          (std::string(name) + std::to_string(::getpid()) + ".png"))
      .string();
}

}  // namespace

TEST(LossPlot, PngHasTheSizeAFallingBlueLineAndOrangeValidationPoints) {
  LossHistory h;
  for (int i = 1; i <= 200; ++i) h.train.push_back({i, 3.0 + 8.0 * std::exp(-i / 40.0)});
  h.valid = {{50, 4.5}, {100, 3.6}, {200, 3.2}};
  const std::string path = temp_png("mds_loss_plot_");
  PlotOptions o;
  o.width = 640;
  o.height = 400;
  write_loss_png(path, h, o);
  std::ifstream in(path, std::ios::binary);
  char sig[8];
  in.read(sig, 8);
  ASSERT_EQ(std::string(sig, 8), "\x89PNG\r\n\x1a\n");

  const Image im = read_png(path);
  ASSERT_EQ(im.w, 640);
  ASSERT_EQ(im.h, 400);
  int non_white = 0, orange = 0;
  // The mean row of the blue pixels in each fifth of the width: it goes down (rows grow).
  double sum_y[5] = {}, count[5] = {};
  for (int y = 0; y < im.h; ++y)
    for (int x = 0; x < im.w; ++x) {
      const uint32_t c = im.at(x, y);
      non_white += c != 0xffffff;
      orange += valid_orange(c);
      if (train_blue(c) && x >= 100 && x < im.w - 200) {  // inside the axes, left of the legend
        const int band = (x - 100) * 5 / (im.w - 300);
        sum_y[band] += y;
        count[band] += 1;
      }
    }
  EXPECT_GT(non_white, im.w * im.h / 100) << "the image is blank";
  EXPECT_GT(orange, 3 * 40) << "no validation points";
  for (int b = 0; b < 5; ++b) ASSERT_GT(count[b], 0) << "no training line in band " << b;
  for (int b = 1; b < 5; ++b)
    EXPECT_GT(sum_y[b] / count[b], sum_y[b - 1] / count[b - 1]) << "the line rises in band " << b;
  std::filesystem::remove(path);
}

TEST(LossPlot, NoTrainingPointsWritesNothingAndAnUnwritablePathIsAUserError) {
  const std::string path = temp_png("mds_loss_plot_empty_");
  write_loss_png(path, {});
  EXPECT_FALSE(std::filesystem::exists(path));
  LossHistory h;
  h.train = {{1, 5.0}, {2, 4.0}};
  EXPECT_THROW(write_loss_png("/proc/mds-no-such-dir/loss.png", h), mds::UserError);
}

TEST(NiceTicks, RoundStepsCoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(nice_ticks(1, 30, 8), (std::vector<double>{5, 10, 15, 20, 25, 30}));
  const std::vector<double> t = nice_ticks(6.31, 10.95, 6);  // step 1
  ASSERT_EQ(t.size(), 4u);
  EXPECT_DOUBLE_EQ(t.front(), 7);
  EXPECT_DOUBLE_EQ(t.back(), 10);
  const std::vector<double> f = nice_ticks(0.0213, 0.0299, 8);  // step 0.002
  ASSERT_EQ(f.size(), 4u);
  EXPECT_NEAR(f[0], 0.022, 1e-12);
  EXPECT_NEAR(f[1] - f[0], 0.002, 1e-12);
}
