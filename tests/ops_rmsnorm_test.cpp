// RMSNorm kernels against a double-precision reference: forward and saved rstd, backward by
// central finite differences on L = sum(y * R), "+=" semantics of dx and dw, determinism.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "mds/core/error.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

using test::all_close;

struct NormShape {
  int64_t n, h;
};

constexpr float kEps = 1e-5f;

// y = x / sqrt(mean(x^2) + eps) * w in double; x is followed by w in one vector for the FD.
std::vector<double> naive(const std::vector<double>& xw, int64_t n, int64_t h,
                          std::vector<double>* rstd = nullptr) {
  std::vector<double> y(static_cast<size_t>(n * h));
  const double* w = xw.data() + n * h;
  for (int64_t i = 0; i < n; ++i) {
    double ss = 0;
    for (int64_t j = 0; j < h; ++j) ss += xw[i * h + j] * xw[i * h + j];
    const double r = 1.0 / std::sqrt(ss / h + kEps);
    if (rstd) rstd->push_back(r);
    for (int64_t j = 0; j < h; ++j) y[i * h + j] = xw[i * h + j] * r * w[j];
  }
  return y;
}

class RMSNorm : public ::testing::TestWithParam<NormShape> {
 protected:
  int64_t n = GetParam().n, h = GetParam().h;
  std::vector<float> x = test::randn(static_cast<size_t>(n * h), 1, 2.0f);
  std::vector<float> w = test::randn(static_cast<size_t>(h), 2);
  std::vector<float> R = test::randn(static_cast<size_t>(n * h), 3);
};

TEST_P(RMSNorm, ForwardMatchesNaive) {
  std::vector<float> y(x.size()), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  std::vector<double> xw = test::to_double(x), ref_rstd;
  xw.insert(xw.end(), w.begin(), w.end());
  EXPECT_TRUE(all_close(y, naive(xw, n, h, &ref_rstd), 1e-5, 1e-6));
  EXPECT_TRUE(all_close(rstd, ref_rstd, 1e-6, 0));
}

TEST_P(RMSNorm, BackwardMatchesFiniteDifferences) {
  std::vector<float> y(x.size()), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  ops::rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), n, h);
  std::vector<double> xw = test::to_double(x);
  xw.insert(xw.end(), w.begin(), w.end());
  auto loss = [&](const std::vector<double>& v) {
    const auto out = naive(v, n, h);
    double acc = 0;
    for (size_t i = 0; i < out.size(); ++i) acc += out[i] * R[i];
    return acc;
  };
  std::vector<size_t> all(xw.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  const auto fd = test::finite_differences(loss, xw, all, 1e-4);
  std::vector<float> grad = dx;
  grad.insert(grad.end(), dw.begin(), dw.end());
  EXPECT_TRUE(all_close(grad, fd, 1e-3, 1e-4));
}

TEST_P(RMSNorm, BackwardAccumulatesIntoDxAndDw) {
  std::vector<float> y(x.size()), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
  ops::rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), n, h);
  std::vector<float> dx2(x.size(), 1.0f), dw2(w.size(), -2.0f);
  ops::rmsnorm_backward(dx2.data(), dw2.data(), R.data(), x.data(), w.data(), rstd.data(), n, h);
  std::vector<double> ex(dx.begin(), dx.end()), ew(dw.begin(), dw.end());
  for (auto& v : ex) v += 1.0;
  for (auto& v : ew) v -= 2.0;
  EXPECT_TRUE(all_close(dx2, ex, 1e-6, 1e-6));
  EXPECT_TRUE(all_close(dw2, ew, 1e-6, 1e-6));
}

TEST_P(RMSNorm, IdenticalBitsAcrossThreadCounts) {
  auto run = [&] {
    std::vector<float> y(x.size()), rstd(static_cast<size_t>(n));
    ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
    std::vector<float> dx(x.size(), 0.0f), dw(w.size(), 0.0f);
    ops::rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), rstd.data(), n, h);
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), dw.begin(), dw.end());
    return y;
  };
  const auto first = run();
  const auto serial = test::run_single_threaded([&] { return run(); });
  EXPECT_TRUE(test::same_bits(first, serial));
  EXPECT_TRUE(test::same_bits(first, run()));
}

INSTANTIATE_TEST_SUITE_P(Shapes, RMSNorm,
                         ::testing::Values(NormShape{1, 1}, NormShape{3, 8}, NormShape{5, 67},
                                           NormShape{16, 130}),
                         [](const auto& info) {
                           return strfmt("n{}_h{}", info.param.n, info.param.h);
                         });

}  // namespace
}  // namespace mds
