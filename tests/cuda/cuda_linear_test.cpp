// cuBLASLt linear kernels against the CPU (OpenBLAS) ones, fp32: forward, dx overwrite and
// accumulate, dw accumulation, null dx / dw skipping that product; shapes include odd sizes and
// a vector (m = 1) so that a transposed layout or a wrong leading dimension cannot pass.
#include <gtest/gtest.h>

#include <ostream>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kFp32Gemm;
using test::to_device;
using test::to_host;

struct LinShape {
  int64_t m, k, n;
};
std::ostream& operator<<(std::ostream& os, const LinShape& s) {
  return os << "m=" << s.m << " k=" << s.k << " n=" << s.n;
}

class CudaLinear : public test::CudaTestWithParam<LinShape> {
 protected:
  int64_t m = GetParam().m, k = GetParam().k, n = GetParam().n;
  std::vector<float> x = test::randn(static_cast<size_t>(m * k), 1);
  std::vector<float> w = test::randn(static_cast<size_t>(n * k), 2);
  std::vector<float> dy = test::randn(static_cast<size_t>(m * n), 3);
  std::vector<float> dx0 = test::randn(static_cast<size_t>(m * k), 4);
  std::vector<float> dw0 = test::randn(static_cast<size_t>(n * k), 5);
};

TEST_P(CudaLinear, ForwardMatchesCpu) {
  std::vector<float> y(static_cast<size_t>(m * n));
  ops::linear_forward(y.data(), x.data(), w.data(), m, k, n);
  auto dx_ = to_device(x), dw_ = to_device(w);
  auto dy_ = to_device(std::vector<float>(y.size(), 99.0f));  // overwritten
  ops::cuda::linear_forward(dy_.data(), dx_.data(), dw_.data(), m, k, n, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(dy_), y, kFp32Gemm));
}

TEST_P(CudaLinear, BackwardMatchesCpuOverwritingOrAccumulatingDx) {
  for (bool accumulate : {false, true}) {
    SCOPED_TRACE(accumulate ? "accumulate_dx" : "overwrite dx");
    std::vector<float> dx = dx0, dw = dw0;
    ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, k, n, accumulate);
    auto g_dx = to_device(dx0), g_dw = to_device(dw0);
    auto g_dy = to_device(dy), g_x = to_device(x), g_w = to_device(w);
    ops::cuda::linear_backward(g_dx.data(), g_dw.data(), g_dy.data(), g_x.data(), g_w.data(), m, k,
                               n, accumulate, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host(g_dx), dx, kFp32Gemm));
    EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Gemm));
  }
}

TEST_P(CudaLinear, NullDxOrDwSkipsThatProduct) {
  std::vector<float> dx = dx0, dw = dw0;
  ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, k, n, false);
  auto g_dy = to_device(dy), g_x = to_device(x), g_w = to_device(w);
  auto g_dx = to_device(dx0), g_dw = to_device(dw0);
  ops::cuda::linear_backward(nullptr, g_dw.data(), g_dy.data(), g_x.data(), g_w.data(), m, k, n,
                             false, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Gemm));
  ops::cuda::linear_backward(g_dx.data(), nullptr, g_dy.data(), g_x.data(), g_w.data(), m, k, n,
                             false, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_dx), dx, kFp32Gemm));
  EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Gemm));  // not touched a second time
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaLinear,
                         ::testing::Values(LinShape{1, 7, 5}, LinShape{3, 5, 7},
                                           LinShape{64, 48, 80}, LinShape{127, 129, 65},
                                           LinShape{256, 768, 1024}),
                         [](const auto& info) {
                           const auto& s = info.param;
                           return "m" + std::to_string(s.m) + "_k" + std::to_string(s.k) + "_n" +
                                  std::to_string(s.n);
                         });

}  // namespace
}  // namespace mds
