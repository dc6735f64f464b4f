// cuBLASLt linear kernels on 16-bit storage (bf16 and fp16, typed tests) against the CPU
// (OpenBLAS, fp32) ones run on the same H-rounded inputs: y and dx are 16-bit (one rounding each,
// also when dx accumulates: the sum is rounded once), dw is fp32 and accumulates into its prior
// contents (Megatron's main_grad). The shapes of the fp32 test: odd sizes and a vector (m = 1).
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kHalfGemmFp32Sums;
using test::to_device;
using test::to_device_half;
using test::to_host;
using test::to_host_float;

constexpr test::Tol kFp32Dw = kHalfGemmFp32Sums;  // dw: no rounding

struct LinShape {
  int64_t m, k, n;
};
std::ostream& operator<<(std::ostream& os, const LinShape& s) {
  return os << "m=" << s.m << " k=" << s.k << " n=" << s.n;
}

constexpr LinShape kShapes[] = {
    {1, 7, 5}, {3, 5, 7}, {64, 48, 80}, {127, 129, 65}, {256, 768, 1024}};

// The inputs of one shape, rounded to H (dw0, the fp32 main_grad, is not).
template <typename H>
struct LinearCase {
  explicit LinearCase(const LinShape& s) : m(s.m), k(s.k), n(s.n) {}
  int64_t m, k, n;
  std::vector<float> x = test::randn_half<H>(static_cast<size_t>(m * k), 1);
  std::vector<float> w = test::randn_half<H>(static_cast<size_t>(n * k), 2);
  std::vector<float> dy = test::randn_half<H>(static_cast<size_t>(m * n), 3);
  std::vector<float> dx0 = test::randn_half<H>(static_cast<size_t>(m * k), 4);
  std::vector<float> dw0 = test::randn(static_cast<size_t>(n * k), 5);
};

template <typename H>
class CudaLinearHalf : public test::CudaTest {
 protected:
  static constexpr test::Tol kOut = test::after_roundings<H>(kHalfGemmFp32Sums, 1);  // y, dx
};
TYPED_TEST_SUITE(CudaLinearHalf, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CudaLinearHalf, ForwardMatchesCpuOnRoundedInputs) {
  using H = TypeParam;
  for (const LinShape& shape : kShapes) {
    SCOPED_TRACE(shape);
    const LinearCase<H> c(shape);
    std::vector<float> y(static_cast<size_t>(c.m * c.n));
    ops::linear_forward(y.data(), c.x.data(), c.w.data(), c.m, c.k, c.n);
    auto g_x = to_device_half<H>(c.x), g_w = to_device_half<H>(c.w);
    auto g_y = to_device_half<H>(std::vector<float>(y.size(), 99.0f));  // overwritten
    ops::cuda::linear_forward(g_y.data(), g_x.data(), g_w.data(), c.m, c.k, c.n, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host_float(g_y), y, TestFixture::kOut));
  }
}

TYPED_TEST(CudaLinearHalf, BackwardHalfDxAndFp32DwMatchCpu) {
  using H = TypeParam;
  for (const LinShape& shape : kShapes) {
    SCOPED_TRACE(shape);
    const LinearCase<H> c(shape);
    for (bool accumulate : {false, true}) {
      SCOPED_TRACE(accumulate ? "accumulate_dx" : "overwrite dx");
      std::vector<float> dx = c.dx0, dw = c.dw0;
      ops::linear_backward(dx.data(), dw.data(), c.dy.data(), c.x.data(), c.w.data(), c.m, c.k, c.n,
                           accumulate);
      auto g_dx = to_device_half<H>(c.dx0);
      auto g_dw = to_device(c.dw0);
      auto g_dy = to_device_half<H>(c.dy), g_x = to_device_half<H>(c.x),
           g_w = to_device_half<H>(c.w);
      ops::cuda::linear_backward(g_dx.data(), g_dw.data(), g_dy.data(), g_x.data(), g_w.data(), c.m,
                                 c.k, c.n, accumulate, nullptr);
      EXPECT_TRUE(close_to_cpu(to_host_float(g_dx), dx, TestFixture::kOut));
      EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Dw));
    }
  }
}

TYPED_TEST(CudaLinearHalf, NullDxOrDwSkipsThatProduct) {
  using H = TypeParam;
  for (const LinShape& shape : kShapes) {
    SCOPED_TRACE(shape);
    const LinearCase<H> c(shape);
    std::vector<float> dx = c.dx0, dw = c.dw0;
    ops::linear_backward(dx.data(), dw.data(), c.dy.data(), c.x.data(), c.w.data(), c.m, c.k, c.n,
                         false);
    auto g_dy = to_device_half<H>(c.dy), g_x = to_device_half<H>(c.x), g_w = to_device_half<H>(c.w);
    auto g_dx = to_device_half<H>(c.dx0);
    auto g_dw = to_device(c.dw0);
    ops::cuda::linear_backward(nullptr, g_dw.data(), g_dy.data(), g_x.data(), g_w.data(), c.m, c.k,
                               c.n, false, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Dw));
    ops::cuda::linear_backward(g_dx.data(), nullptr, g_dy.data(), g_x.data(), g_w.data(), c.m, c.k,
                               c.n, false, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host_float(g_dx), dx, TestFixture::kOut));
    EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Dw));  // not touched a second time
  }
}

}  // namespace
}  // namespace mds
