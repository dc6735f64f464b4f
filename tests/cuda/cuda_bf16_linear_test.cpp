// cuBLASLt linear kernels on bf16 storage against the CPU (OpenBLAS, fp32) ones run on the same
// bf16-rounded inputs: y and dx are bf16 (one rounding each, also when dx accumulates: the sum
// is rounded once), dw is fp32 and accumulates into its prior contents (Megatron's main_grad).
// The shapes of the fp32 test: odd sizes and a vector (m = 1).
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kBf16GemmFp32Sums;
using test::rounded_to_bf16;
using test::to_device;
using test::to_device_bf16;
using test::to_host;
using test::to_host_float;

constexpr test::Tol kBf16Out = test::after_bf16_roundings(kBf16GemmFp32Sums, 1);  // y, dx
constexpr test::Tol kFp32Dw = kBf16GemmFp32Sums;                                  // dw: no rounding

struct LinShape {
  int64_t m, k, n;
};
std::ostream& operator<<(std::ostream& os, const LinShape& s) {
  return os << "m=" << s.m << " k=" << s.k << " n=" << s.n;
}

class CudaLinearBf16 : public test::CudaTestWithParam<LinShape> {
 protected:
  int64_t m = GetParam().m, k = GetParam().k, n = GetParam().n;
  std::vector<float> x = rounded_to_bf16(test::randn(static_cast<size_t>(m * k), 1));
  std::vector<float> w = rounded_to_bf16(test::randn(static_cast<size_t>(n * k), 2));
  std::vector<float> dy = rounded_to_bf16(test::randn(static_cast<size_t>(m * n), 3));
  std::vector<float> dx0 = rounded_to_bf16(test::randn(static_cast<size_t>(m * k), 4));
  std::vector<float> dw0 = test::randn(static_cast<size_t>(n * k), 5);  // fp32 main_grad
};

TEST_P(CudaLinearBf16, ForwardMatchesCpuOnRoundedInputs) {
  std::vector<float> y(static_cast<size_t>(m * n));
  ops::linear_forward(y.data(), x.data(), w.data(), m, k, n);
  auto g_x = to_device_bf16(x), g_w = to_device_bf16(w);
  auto g_y = to_device_bf16(std::vector<float>(y.size(), 99.0f));  // overwritten
  ops::cuda::linear_forward(g_y.data(), g_x.data(), g_w.data(), m, k, n, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host_float(g_y), y, kBf16Out));
}

TEST_P(CudaLinearBf16, BackwardBf16DxAndFp32DwMatchCpu) {
  for (bool accumulate : {false, true}) {
    SCOPED_TRACE(accumulate ? "accumulate_dx" : "overwrite dx");
    std::vector<float> dx = dx0, dw = dw0;
    ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, k, n, accumulate);
    auto g_dx = to_device_bf16(dx0);
    auto g_dw = to_device(dw0);
    auto g_dy = to_device_bf16(dy), g_x = to_device_bf16(x), g_w = to_device_bf16(w);
    ops::cuda::linear_backward(g_dx.data(), g_dw.data(), g_dy.data(), g_x.data(), g_w.data(), m, k,
                               n, accumulate, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host_float(g_dx), dx, kBf16Out));
    EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Dw));
  }
}

TEST_P(CudaLinearBf16, NullDxOrDwSkipsThatProduct) {
  std::vector<float> dx = dx0, dw = dw0;
  ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), m, k, n, false);
  auto g_dy = to_device_bf16(dy), g_x = to_device_bf16(x), g_w = to_device_bf16(w);
  auto g_dx = to_device_bf16(dx0);
  auto g_dw = to_device(dw0);
  ops::cuda::linear_backward(nullptr, g_dw.data(), g_dy.data(), g_x.data(), g_w.data(), m, k, n,
                             false, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Dw));
  ops::cuda::linear_backward(g_dx.data(), nullptr, g_dy.data(), g_x.data(), g_w.data(), m, k, n,
                             false, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host_float(g_dx), dx, kBf16Out));
  EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Dw));  // not touched a second time
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaLinearBf16,
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
