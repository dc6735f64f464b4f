// Element-wise kernels and sum_squares: values against loops in double, aliasing of add, and
// sum_squares' bitwise independence from the thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

constexpr int64_t kN = 100003;  // not a multiple of any vector width or chunk

TEST(Elementwise, AddAddInplaceAndScaleMatchLoops) {
  const auto a = test::randn(kN, 1), b = test::randn(kN, 2);
  std::vector<float> y(kN);
  ops::add(y.data(), a.data(), b.data(), kN);
  std::vector<double> ref(kN);
  for (int64_t i = 0; i < kN; ++i) ref[i] = static_cast<double>(a[i] + b[i]);
  EXPECT_TRUE(test::all_close(y, ref, 0, 0));

  std::vector<float> alias = a;  // y may alias an input
  ops::add(alias.data(), alias.data(), b.data(), kN);
  EXPECT_TRUE(test::same_bits(alias, y));

  std::vector<float> acc = a;
  ops::add_inplace(acc.data(), b.data(), kN);
  EXPECT_TRUE(test::same_bits(acc, y));

  ops::scale_inplace(acc.data(), -0.25f, kN);
  for (int64_t i = 0; i < kN; ++i) ref[i] = static_cast<double>(y[i] * -0.25f);
  EXPECT_TRUE(test::all_close(acc, ref, 0, 0));
}

TEST(Elementwise, SumSquaresMatchesDoubleAndIgnoresThreadCount) {
  const auto x = test::randn(kN, 3, 3.0f);
  double ref = 0;
  for (float v : x) ref += static_cast<double>(v) * v;
  const double got = ops::sum_squares(x.data(), kN);
  EXPECT_NEAR(got, ref, 1e-12 * ref);
  const double serial = test::run_single_threaded([&] { return ops::sum_squares(x.data(), kN); });
  EXPECT_EQ(std::bit_cast<uint64_t>(got), std::bit_cast<uint64_t>(serial));
  EXPECT_EQ(ops::sum_squares(x.data(), 0), 0.0);
}

}  // namespace
}  // namespace mds
