// The mixed-precision pieces of the optimizer step on the GPU: fp32 -> 16-bit conversion (bf16 and
// fp16, typed tests: the bits of the host's round to nearest even, specials, fp16's overflow to
// inf and its subnormals included) and back, AdamW on the fp32 master writing the 16-bit copy in
// the same pass, and the inf/NaN check of dynamic loss scaling (fp32 gradients).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::bits_of;
using test::close_to_cpu;
using test::kFp32Elementwise;
using test::to_device;
using test::to_device_half;
using test::to_host;

template <typename H>
std::vector<uint16_t> host_bits(const std::vector<float>& x) {
  std::vector<uint16_t> bits(x.size());
  for (size_t i = 0; i < x.size(); ++i) bits[i] = H(x[i]).bits;
  return bits;
}

template <typename H>
class CudaMixedPrecision : public test::CudaTest {};
TYPED_TEST_SUITE(CudaMixedPrecision, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CudaMixedPrecision, ToHalfIsTheHostRoundingAndToFp32IsExact) {
  using H = TypeParam;
  auto x = test::randn(10007, 91, 100.0f);
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f,
                            -0.0f,
                            inf,
                            -inf,
                            std::numeric_limits<float>::max(),  // bf16: rounds to inf too
                            std::bit_cast<float>(0x3f808000u),  // bf16 ties, to even and up
                            std::bit_cast<float>(0x3f818000u),
                            std::bit_cast<float>(0x00018000u),  // bf16 subnormal tie
                            65504.0f,                           // fp16's largest
                            65519.0f,                           // rounds down to it
                            65520.0f,                           // fp16: inf, not clamped
                            -1e5f,                              // fp16: -inf
                            std::ldexp(1.0f, -24),              // fp16's smallest subnormal
                            std::ldexp(1.0f, -25),              // its tie: to 0
                            std::ldexp(3.0f, -25),              // a tie to even, up
                            1.0f + 0x1p-11f,                    // an fp16 tie at 1: to even
                            std::numeric_limits<float>::quiet_NaN()};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  auto g_x = to_device(x);
  ops::cuda::DeviceBuffer<test::DeviceHalf<H>> g_y(x.size());
  ops::cuda::to_half(g_y.data(), g_x.data(), static_cast<int64_t>(x.size()), nullptr);
  const auto gpu = bits_of(g_y), host = host_bits<H>(x);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]))  // any NaN pattern will do (the host's is the canonical 0x7fff)
      ASSERT_TRUE(std::isnan(static_cast<float>(H::from_bits(gpu[i])))) << std::hex << gpu[i];
    else
      ASSERT_EQ(gpu[i], host[i]) << "at " << i << ": " << x[i];
  }
  auto g_back = to_device(std::vector<float>(x.size()));
  ops::cuda::to_fp32(g_back.data(), g_y.data(), static_cast<int64_t>(x.size()), nullptr);
  const auto back = to_host(g_back);
  for (size_t i = 0; i < x.size(); ++i) {
    const float exact = static_cast<float>(H::from_bits(gpu[i]));
    if (std::isnan(exact))
      ASSERT_TRUE(std::isnan(back[i])) << i;
    else
      ASSERT_EQ(std::bit_cast<uint32_t>(back[i]), std::bit_cast<uint32_t>(exact)) << i;
  }
}

// The fp32 master, m and v as the fp32 step (and the CPU's); the 16-bit weights are exactly the
// rounding of the master the step wrote.
TYPED_TEST(CudaMixedPrecision, AdamWWritesTheMasterAndItsHalfCopy) {
  using H = TypeParam;
  const int64_t n = 100003;
  std::vector<float> p = test::randn(static_cast<size_t>(n), 61), m(p.size(), 0.0f),
                     v(p.size(), 0.0f);
  auto g_p = to_device(p), g_m = to_device(m), g_v = to_device(v);
  auto g_p16 = to_device_half<H>(std::vector<float>(p.size(), 3.0f));
  for (int64_t step = 1; step <= 3; ++step) {
    const auto g = test::randn(p.size(), 62 + static_cast<uint32_t>(step), 0.1f);
    ops::adamw_step(p.data(), g.data(), m.data(), v.data(), n, 3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f,
                    step, 0.5f);
    auto g_g = to_device(g);
    ops::cuda::adamw_step(g_p.data(), g_p16.data(), g_g.data(), g_m.data(), g_v.data(), n, 3e-3f,
                          0.9f, 0.95f, 1e-8f, 0.1f, step, 0.5f, nullptr);
  }
  const auto master = to_host(g_p);
  EXPECT_TRUE(close_to_cpu(master, p, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host(g_m), m, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host(g_v), v, kFp32Elementwise));
  EXPECT_EQ(bits_of(g_p16), host_bits<H>(master));
}

// ---- The overflow check of dynamic loss scaling (fp32 gradients, whatever the storage type) ----

class CudaNonFinite : public test::CudaTest {};

TEST_F(CudaNonFinite, AnyNonFiniteFindsInfAndNanAnywhere) {
  const int64_t n = (int64_t{1} << 20) + 3;  // more than the grid covers in one stride
  auto x = test::randn(static_cast<size_t>(n), 71, 1e30f);  // large, finite
  auto g_x = to_device(x);
  EXPECT_FALSE(ops::cuda::any_non_finite(g_x.data(), n, nullptr));
  EXPECT_FALSE(ops::cuda::any_non_finite(g_x.data(), 0, nullptr));
  const float bad[] = {std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity(),
                       std::numeric_limits<float>::quiet_NaN()};
  for (int64_t at : {int64_t{0}, n / 2, n - 1}) {
    for (float b : bad) {
      SCOPED_TRACE(at);
      std::vector<float> y = x;
      y[static_cast<size_t>(at)] = b;
      auto g_y = to_device(y);
      EXPECT_TRUE(ops::cuda::any_non_finite(g_y.data(), n, nullptr)) << b;
      if (at > 0) {
        EXPECT_FALSE(ops::cuda::any_non_finite(g_y.data(), at, nullptr));  // before it
      }
    }
  }
}

// One flag over several buffers: set by the one with a NaN, kept by the clean one after it.
TEST_F(CudaNonFinite, AsyncFlagCollectsSeveralBuffersAndIsNeverCleared) {
  auto clean = to_device(test::randn(1000, 72));
  auto dirty_host = test::randn(1000, 73);
  dirty_host[500] = std::numeric_limits<float>::quiet_NaN();
  auto dirty = to_device(dirty_host);
  auto flag = to_device(std::vector<int32_t>{0});
  ops::cuda::any_non_finite_async(flag.data(), clean.data(), 1000, nullptr);
  EXPECT_EQ(to_host(flag)[0], 0);
  ops::cuda::any_non_finite_async(flag.data(), dirty.data(), 1000, nullptr);
  ops::cuda::any_non_finite_async(flag.data(), clean.data(), 1000, nullptr);
  EXPECT_EQ(to_host(flag)[0], 1);
}

}  // namespace
}  // namespace mds
