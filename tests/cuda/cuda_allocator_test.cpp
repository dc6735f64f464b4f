// The caching allocator: size classes (host only, runs everywhere), reuse of freed blocks and
// the current / peak / reserved counters (GPU).
#include <gtest/gtest.h>

#include "cuda_test_util.h"
#include "mds/ops/cuda/allocator.h"

namespace mds {
namespace {

using ops::cuda::CachingAllocator;
using ops::cuda::DeviceBuffer;

TEST(CudaAllocatorSizeClass, RoundsUpToPowersOfTwoThenTwoMiBSteps) {
  EXPECT_EQ(CachingAllocator::size_class(1), 512u);
  EXPECT_EQ(CachingAllocator::size_class(512), 512u);
  EXPECT_EQ(CachingAllocator::size_class(513), 1024u);
  EXPECT_EQ(CachingAllocator::size_class(size_t{3} << 19), size_t{2} << 20);  // 1.5 MiB -> 2
  EXPECT_EQ(CachingAllocator::size_class((size_t{2} << 20) + 1), size_t{4} << 20);
  EXPECT_EQ(CachingAllocator::size_class(size_t{5} << 20), size_t{6} << 20);  // 2 MiB steps
  for (size_t b : {size_t{1}, size_t{777}, size_t{1} << 20, (size_t{7} << 20) + 3})
    EXPECT_GE(CachingAllocator::size_class(b), b);
}

class CudaAllocator : public test::CudaTest {};

TEST_F(CudaAllocator, FreedBlockIsReusedAndCountersTrackIt) {
  auto& a = CachingAllocator::instance();
  a.release_cached();
  const auto before = a.stats();
  void* p = nullptr;
  {
    DeviceBuffer<float> buf(1000);  // 4000 B -> the 4 KiB class
    p = buf.data();
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(a.stats().current, before.current + 4096);
    EXPECT_GE(a.stats().peak, before.current + 4096);
    EXPECT_EQ(a.stats().reserved, before.reserved + 4096);
  }
  EXPECT_EQ(a.stats().current, before.current);
  if (!a.caching()) {  // MDS_NO_CUDA_MEMORY_CACHING=1: a freed block goes back to the driver
    EXPECT_EQ(a.stats().reserved, before.reserved);
    return;
  }
  EXPECT_EQ(a.stats().reserved, before.reserved + 4096);  // cached, not returned to the driver
  DeviceBuffer<float> again(900);                         // same class: the same block comes back
  EXPECT_EQ(static_cast<void*>(again.data()), p);
  EXPECT_EQ(a.stats().reserved, before.reserved + 4096);
  again.reset();
  a.release_cached();
  EXPECT_EQ(a.stats().reserved, before.reserved);
}

TEST_F(CudaAllocator, PeakRemembersTheHighWaterMark) {
  auto& a = CachingAllocator::instance();
  a.reset_peak();
  const size_t base = a.stats().current;
  { DeviceBuffer<char> big(size_t{8} << 20); }
  EXPECT_EQ(a.stats().current, base);
  EXPECT_EQ(a.stats().peak, base + (size_t{8} << 20));
  a.reset_peak();
  EXPECT_EQ(a.stats().peak, base);
}

TEST_F(CudaAllocator, MovedBufferOwnsTheBlock) {
  DeviceBuffer<float> a(16);
  float* p = a.data();
  DeviceBuffer<float> b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.size(), 16u);
}

}  // namespace
}  // namespace mds
