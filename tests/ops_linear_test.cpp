// OpenBLAS linear kernels against naive triple loops in double: forward, dx overwrite and
// accumulate, dw accumulation, and null dx / dw skipping that product.
#include <gtest/gtest.h>

#include "mds/core/error.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

using test::all_close;

struct LinShape {
  int64_t m, k, n;
};

class Linear : public ::testing::TestWithParam<LinShape> {
 protected:
  int64_t m = GetParam().m, k = GetParam().k, n = GetParam().n;
  std::vector<float> x = test::randn(static_cast<size_t>(m * k), 1);
  std::vector<float> w = test::randn(static_cast<size_t>(n * k), 2);
  std::vector<float> dy = test::randn(static_cast<size_t>(m * n), 3);
  std::vector<float> dx0 = test::randn(static_cast<size_t>(m * k), 4);  // prior contents
  std::vector<float> dw0 = test::randn(static_cast<size_t>(n * k), 5);

  // dx[m, k] = dy @ w (+ dx0)
  std::vector<double> naive_dx(bool accumulate) const {
    std::vector<double> out(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t c = 0; c < k; ++c) {
        double acc = accumulate ? dx0[i * k + c] : 0.0;
        for (int64_t o = 0; o < n; ++o) acc += static_cast<double>(dy[i * n + o]) * w[o * k + c];
        out[i * k + c] = acc;
      }
    return out;
  }
  // dw[n, k] = dw0 + dy^T @ x
  std::vector<double> naive_dw() const {
    std::vector<double> out(static_cast<size_t>(n * k));
    for (int64_t o = 0; o < n; ++o)
      for (int64_t c = 0; c < k; ++c) {
        double acc = dw0[o * k + c];
        for (int64_t i = 0; i < m; ++i) acc += static_cast<double>(dy[i * n + o]) * x[i * k + c];
        out[o * k + c] = acc;
      }
    return out;
  }
};

TEST_P(Linear, ForwardMatchesNaive) {
  std::vector<float> y(static_cast<size_t>(m * n), 99.0f);
  ops::linear_forward(y.data(), x.data(), w.data(), m, k, n);
  std::vector<double> ref(y.size());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < n; ++o) {
      double acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += static_cast<double>(x[i * k + c]) * w[o * k + c];
      ref[i * n + o] = acc;
    }
  EXPECT_TRUE(all_close(y, ref, 1e-5, 1e-5));
}

TEST_P(Linear, BackwardOverwritesDxAndAccumulatesDw) {
  std::vector<float> dx = dx0, dw = dw0;
  ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, k, n, false);
  EXPECT_TRUE(all_close(dx, naive_dx(false), 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dw, naive_dw(), 1e-5, 1e-5));
}

TEST_P(Linear, BackwardAccumulatesDxWhenAsked) {
  std::vector<float> dx = dx0, dw = dw0;
  ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, k, n, true);
  EXPECT_TRUE(all_close(dx, naive_dx(true), 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dw, naive_dw(), 1e-5, 1e-5));
}

TEST_P(Linear, NullDxOrDwSkipsThatProduct) {
  std::vector<float> dx = dx0, dw = dw0;
  ops::linear_backward(nullptr, dw.data(), dy.data(), x.data(), w.data(), m, k, n, false);
  EXPECT_TRUE(all_close(dw, naive_dw(), 1e-5, 1e-5));
  ops::linear_backward(dx.data(), nullptr, dy.data(), x.data(), w.data(), m, k, n, true);
  EXPECT_TRUE(all_close(dx, naive_dx(true), 1e-5, 1e-5));
  EXPECT_TRUE(all_close(dw, naive_dw(), 1e-5, 1e-5));  // untouched by the second call
}

INSTANTIATE_TEST_SUITE_P(Shapes, Linear,
                         ::testing::Values(LinShape{1, 1, 1}, LinShape{3, 5, 7},
                                           LinShape{17, 64, 33}, LinShape{64, 48, 128},
                                           LinShape{130, 96, 65}),
                         [](const auto& info) {
                           return strfmt("m{}_k{}_n{}", info.param.m, info.param.k, info.param.n);
                         });

}  // namespace
}  // namespace mds
