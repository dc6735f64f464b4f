// SwiGLU kernels: forward against silu(gate) * up in double, backward against central finite
// differences on L = sum(h * R), and in-place backward (dgu aliasing gu).
#include <gtest/gtest.h>

#include <cmath>

#include "mds/core/error.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

using test::all_close;

std::vector<double> naive(const std::vector<double>& gu, int64_t n, int64_t f) {
  std::vector<double> h(static_cast<size_t>(n * f));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < f; ++j) {
      const double g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
      h[i * f + j] = g / (1.0 + std::exp(-g)) * u;
    }
  return h;
}

class SwiGLU : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {
 protected:
  int64_t n = GetParam().first, f = GetParam().second;
  std::vector<float> gu = test::randn(static_cast<size_t>(n * 2 * f), 1, 3.0f);
  std::vector<float> R = test::randn(static_cast<size_t>(n * f), 2);
};

TEST_P(SwiGLU, ForwardMatchesNaive) {
  std::vector<float> h(static_cast<size_t>(n * f));
  ops::swiglu_forward(h.data(), gu.data(), n, f);
  EXPECT_TRUE(all_close(h, naive(test::to_double(gu), n, f), 1e-5, 1e-6));
}

TEST_P(SwiGLU, BackwardMatchesFiniteDifferences) {
  std::vector<float> dgu(gu.size());
  ops::swiglu_backward(dgu.data(), R.data(), gu.data(), n, f);
  auto loss = [&](const std::vector<double>& v) {
    const auto h = naive(v, n, f);
    double acc = 0;
    for (size_t i = 0; i < h.size(); ++i) acc += h[i] * R[i];
    return acc;
  };
  const auto idx = test::sample_indices(gu.size(), gu.size(), 0);
  EXPECT_TRUE(all_close(dgu, test::finite_differences(loss, test::to_double(gu), idx), 1e-4, 1e-5));

  std::vector<float> inplace = gu;  // dgu may alias gu
  ops::swiglu_backward(inplace.data(), R.data(), inplace.data(), n, f);
  EXPECT_TRUE(test::same_bits(inplace, dgu));
}

INSTANTIATE_TEST_SUITE_P(Shapes, SwiGLU,
                         ::testing::Values(std::pair<int64_t, int64_t>{1, 1},
                                           std::pair<int64_t, int64_t>{4, 7},
                                           std::pair<int64_t, int64_t>{9, 64}),
                         [](const auto& info) {
                           return strfmt("n{}_f{}", info.param.first, info.param.second);
                         });

}  // namespace
}  // namespace mds
