// The mixed-precision pieces of the optimizer step on the GPU: fp32 -> bf16 conversion (the bits
// of the host's round to nearest even, specials included) and back, AdamW on the fp32 master
// writing the bf16 copy in the same pass, and the inf/NaN check of dynamic loss scaling.
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

using test::close_to_cpu;
using test::kFp32Elementwise;
using test::to_device;
using test::to_device_bf16;
using test::to_host;
using test::to_host_float;

std::vector<uint16_t> bits_of(const ops::cuda::DeviceBuffer<ops::cuda::bf16>& dev) {
  MDS_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> bits(dev.size());
  if (!bits.empty())
    MDS_CUDA_CHECK(cudaMemcpy(bits.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost));
  return bits;
}

std::vector<uint16_t> host_bits(const std::vector<float>& x) {
  std::vector<uint16_t> bits(x.size());
  for (size_t i = 0; i < x.size(); ++i) bits[i] = bf16_bits(x[i]);
  return bits;
}

class CudaMixedPrecision : public test::CudaTest {};

TEST_F(CudaMixedPrecision, ToBf16IsTheHostRoundingAndToFp32IsExact) {
  auto x = test::randn(10007, 91, 100.0f);
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {0.0f,
                            -0.0f,
                            inf,
                            -inf,
                            std::numeric_limits<float>::max(),
                            std::bit_cast<float>(0x3f808000u),
                            std::bit_cast<float>(0x3f818000u),
                            std::bit_cast<float>(0x00018000u),
                            std::numeric_limits<float>::quiet_NaN()};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  auto g_x = to_device(x);
  ops::cuda::DeviceBuffer<ops::cuda::bf16> g_y(x.size());
  ops::cuda::to_bf16(g_y.data(), g_x.data(), static_cast<int64_t>(x.size()), nullptr);
  const auto gpu = bits_of(g_y), host = host_bits(x);
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::isnan(x[i]))  // any NaN pattern will do (the host's is the canonical 0x7fff)
      ASSERT_TRUE((gpu[i] & 0x7f80) == 0x7f80 && (gpu[i] & 0x7f) != 0) << std::hex << gpu[i];
    else
      ASSERT_EQ(gpu[i], host[i]) << "at " << i << ": " << x[i];
  }
  auto g_back = to_device(std::vector<float>(x.size()));
  ops::cuda::to_fp32(g_back.data(), g_y.data(), static_cast<int64_t>(x.size()), nullptr);
  const auto back = to_host(g_back);
  for (size_t i = 0; i < x.size(); ++i)
    ASSERT_EQ(std::bit_cast<uint32_t>(back[i]), static_cast<uint32_t>(gpu[i]) << 16) << i;
}

// The fp32 master, m and v as the fp32 step (and the CPU's); the bf16 weights are exactly the
// rounding of the master the step wrote.
TEST_F(CudaMixedPrecision, AdamWWritesTheMasterAndItsBf16Copy) {
  const int64_t n = 100003;
  std::vector<float> p = test::randn(static_cast<size_t>(n), 61), m(p.size(), 0.0f),
                     v(p.size(), 0.0f);
  auto g_p = to_device(p), g_m = to_device(m), g_v = to_device(v);
  auto g_p16 = to_device_bf16(std::vector<float>(p.size(), 3.0f));
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
  EXPECT_EQ(bits_of(g_p16), host_bits(master));
}

TEST_F(CudaMixedPrecision, AnyNonFiniteFindsInfAndNanAnywhere) {
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
      if (at > 0) EXPECT_FALSE(ops::cuda::any_non_finite(g_y.data(), at, nullptr));  // before it
    }
  }
}

// One flag over several buffers: set by the one with a NaN, kept by the clean one after it.
TEST_F(CudaMixedPrecision, AsyncFlagCollectsSeveralBuffersAndIsNeverCleared) {
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
