// Rotary position embedding on the CPU, rotate-half (NeoX / Hugging Face) convention.
// The tables are computed in double (inv_freq, the angle pos * inv_freq, cos and sin) and then
// rounded to fp32 once: each entry is the correctly rounded value, independent of how large pos
// grows. (Hugging Face computes the angle in fp32, which differs by up to ~pos * 2^-24 rad; we
// prefer the exact table so that every device that loads it agrees bit for bit.)
#include <cmath>

#include "mds/core/error.h"
#include "mds/ops/ops.h"

namespace mds::ops {

// cos, sin: [max_pos, hd/2];  entry (p, i) is the angle p * theta^(-2i/hd).
void rope_tables(float* cos, float* sin, int64_t max_pos, int64_t hd, double theta) {
  MDS_ASSERT(hd % 2 == 0, "rotary head dim must be even, got {}", hd);
  const int64_t half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < max_pos; ++p) {
    for (int64_t i = 0; i < half; ++i) {
      const double inv_freq =
          std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(hd));
      const double angle = static_cast<double>(p) * inv_freq;
      cos[p * half + i] = static_cast<float>(std::cos(angle));
      sin[p * half + i] = static_cast<float>(std::sin(angle));
    }
  }
}

namespace {

// Rotates each (x[i], x[i + hd/2]) pair by +angle (sign = 1) or -angle (sign = -1).
void rotate(float* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
            int64_t hd, int64_t row_stride, int64_t pos0, float sign) {
  const int64_t half = hd / 2;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < b * s; ++row) {
    const int64_t pos = pos0 + row % s;
    const float* c = cos + pos * half;
    const float* sn = sin + pos * half;
    for (int64_t hh = 0; hh < heads; ++hh) {
      float* xh = x + row * row_stride + hh * hd;
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        const float x1 = xh[i], x2 = xh[i + half], si = sign * sn[i];
        xh[i] = x1 * c[i] - x2 * si;
        xh[i + half] = x2 * c[i] + x1 * si;
      }
    }
  }
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0) {
  rotate(x, cos, sin, b, s, heads, hd, row_stride, pos0, 1.0f);
}

// A rotation's transpose is the rotation by the opposite angle.
void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) {
  rotate(dx, cos, sin, b, s, heads, hd, row_stride, pos0, -1.0f);
}

}  // namespace mds::ops
