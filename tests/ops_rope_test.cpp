// RoPE kernels: tables against the direct formula, the forward against a complex rotation
// z * e^{i angle} with z = x[i] + i x[i + hd/2] (rotate-half pairing), strided rows inside a
// fused buffer with a position offset, and the backward as the exact transpose.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>

#include "mds/core/error.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

struct RopeShape {
  int64_t b, s, heads, hd, pos0;
};

constexpr double kTheta = 50000.0;

class RoPE : public ::testing::TestWithParam<RopeShape> {
 protected:
  RopeShape a = GetParam();
  int64_t max_pos = a.pos0 + a.s;
  // The rotated heads sit after 2 other heads' worth of floats in a longer fused row.
  int64_t offset = 2 * a.hd, stride = (a.heads + 3) * a.hd + 1;
  std::vector<float> cos = std::vector<float>(static_cast<size_t>(max_pos * a.hd / 2));
  std::vector<float> sin = cos;
  std::vector<float> buf = test::randn(static_cast<size_t>(a.b * a.s * stride), 1);

  void SetUp() override { ops::rope_tables(cos.data(), sin.data(), max_pos, a.hd, kTheta); }
  void forward(std::vector<float>& x) const {
    ops::rope_forward(x.data() + offset, cos.data(), sin.data(), a.b, a.s, a.heads, a.hd, stride,
                      a.pos0);
  }
  void backward(std::vector<float>& x) const {
    ops::rope_backward(x.data() + offset, cos.data(), sin.data(), a.b, a.s, a.heads, a.hd, stride,
                       a.pos0);
  }
};

TEST_P(RoPE, TablesMatchDirectFormula) {
  const int64_t half = a.hd / 2;
  for (int64_t p = 0; p < max_pos; ++p)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(p) * std::pow(kTheta, -2.0 * i / a.hd);
      ASSERT_NEAR(cos[p * half + i], std::cos(angle), 1e-7) << "pos " << p << " i " << i;
      ASSERT_NEAR(sin[p * half + i], std::sin(angle), 1e-7) << "pos " << p << " i " << i;
    }
}

TEST_P(RoPE, ForwardMatchesComplexRotation) {
  std::vector<float> x = buf;
  forward(x);
  std::vector<double> expected = test::to_double(buf);
  const int64_t half = a.hd / 2;
  for (int64_t row = 0; row < a.b * a.s; ++row) {
    const double pos = static_cast<double>(a.pos0 + row % a.s);
    for (int64_t h = 0; h < a.heads; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const size_t lo = static_cast<size_t>(row * stride + offset + h * a.hd + i);
        const size_t hi = lo + static_cast<size_t>(half);
        const double angle = pos * std::pow(kTheta, -2.0 * i / a.hd);
        const auto z = std::complex<double>(buf[lo], buf[hi]) * std::polar(1.0, angle);
        expected[lo] = z.real();
        expected[hi] = z.imag();
      }
  }
  // Entries outside the rotated heads are compared too: they must be untouched.
  EXPECT_TRUE(test::all_close(x, expected, 1e-5, 1e-6));
}

TEST_P(RoPE, BackwardIsTheTranspose) {
  // <R x, y> = <x, R^T y> over the rotated entries (the others are left as they were).
  std::vector<float> y0 = test::randn(buf.size(), 2);
  std::vector<float> rx = buf, rty = y0;
  forward(rx);
  backward(rty);
  double lhs = 0, rhs = 0;
  for (int64_t row = 0; row < a.b * a.s; ++row)
    for (int64_t c = offset; c < offset + a.heads * a.hd; ++c) {
      const size_t i = static_cast<size_t>(row * stride + c);
      lhs += static_cast<double>(rx[i]) * y0[i];
      rhs += static_cast<double>(buf[i]) * rty[i];
    }
  EXPECT_NEAR(lhs, rhs, 1e-5 * (std::fabs(lhs) + 1.0));

  std::vector<float> round_trip = buf;  // a rotation's transpose is its inverse
  forward(round_trip);
  backward(round_trip);
  EXPECT_TRUE(test::all_close(round_trip, test::to_double(buf), 1e-5, 1e-6));
}

INSTANTIATE_TEST_SUITE_P(Shapes, RoPE,
                         ::testing::Values(RopeShape{1, 1, 1, 2, 0}, RopeShape{2, 5, 3, 8, 0},
                                           RopeShape{2, 7, 2, 64, 100},
                                           RopeShape{1, 33, 4, 16, 4093}),
                         [](const auto& info) {
                           const auto& p = info.param;
                           return strfmt("b{}_s{}_heads{}_hd{}_pos{}", p.b, p.s, p.heads, p.hd,
                                         p.pos0);
                         });

}  // namespace
}  // namespace mds
