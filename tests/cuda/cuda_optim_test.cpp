// AdamW, the sum of squares and the element-wise kernels on the GPU against the CPU ones:
// several AdamW steps with weight decay and gradient scaling, a deterministic sum of squares
// over a length that is not a multiple of the chunk, and add / add_inplace / scale_inplace.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kFp32Elementwise;
using test::to_device;
using test::to_host;

class CudaOptim : public test::CudaTest {};

TEST_F(CudaOptim, AdamWStepsMatchCpu) {
  const int64_t n = 100003;
  std::vector<float> p = test::randn(static_cast<size_t>(n), 61), m(p.size(), 0.0f),
                     v(p.size(), 0.0f);
  auto g_p = to_device(p), g_m = to_device(m), g_v = to_device(v);
  for (int64_t step = 1; step <= 5; ++step) {
    const auto g = test::randn(p.size(), 62 + static_cast<uint32_t>(step), 0.1f);
    ops::adamw_step(p.data(), g.data(), m.data(), v.data(), n, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                    step, 0.5f);
    auto g_g = to_device(g);
    ops::cuda::adamw_step(g_p.data(), g_g.data(), g_m.data(), g_v.data(), n, 3e-3f, 0.9f, 0.95f,
                          1e-8f, 0.1f, step, 0.5f, nullptr);
  }
  EXPECT_TRUE(close_to_cpu(to_host(g_p), p, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host(g_m), m, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host(g_v), v, kFp32Elementwise));
}

TEST_F(CudaOptim, SumSquaresMatchesCpuAndIsDeterministic) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{1000}, (int64_t{1} << 14) * 5 + 77}) {
    SCOPED_TRACE(n);
    const auto x = test::randn(static_cast<size_t>(n), 71);
    const double cpu = ops::sum_squares(x.data(), n);
    auto g_x = to_device(x);
    const double gpu = ops::cuda::sum_squares(g_x.data(), n, nullptr);
    EXPECT_NEAR(gpu, cpu, 1e-10 * std::max(1.0, cpu));  // double sums, different order
    EXPECT_EQ(ops::cuda::sum_squares(g_x.data(), n, nullptr), gpu) << "not deterministic";
  }
}

TEST_F(CudaOptim, ElementwiseMatchCpu) {
  const int64_t n = 4099;
  const auto a = test::randn(static_cast<size_t>(n), 81), b = test::randn(a.size(), 82);
  std::vector<float> y(a.size());
  ops::add(y.data(), a.data(), b.data(), n);
  auto g_a = to_device(a), g_b = to_device(b), g_y = to_device(std::vector<float>(a.size()));
  ops::cuda::add(g_y.data(), g_a.data(), g_b.data(), n, nullptr);
  EXPECT_TRUE(test::same_bits(to_host(g_y), y));
  ops::add_inplace(y.data(), a.data(), n);
  ops::cuda::add_inplace(g_y.data(), g_a.data(), n, nullptr);
  EXPECT_TRUE(test::same_bits(to_host(g_y), y));
  ops::scale_inplace(y.data(), 0.37f, n);
  ops::cuda::scale_inplace(g_y.data(), 0.37f, n, nullptr);
  EXPECT_TRUE(test::same_bits(to_host(g_y), y));
}

}  // namespace
}  // namespace mds
