// The CUDA emulator's own primitives (emu.h, shim/mds/ops/cuda/mma.cuh) against definitions
// written independently of it, so that attention_mma_test's kernels are checked by something that
// is itself right, and can fail: mma.sync m16n8k16 on matrices placed by the PTX ISA's fragment
// figures (written here as "which lane holds element (r, c)", the inverse of the shim's form) gives
// C + A B exactly; ldmatrix x4 and x4.trans deliver the documented elements; a missing
// __syncthreads, a read before the cp.async wait, a shuffle with a lane missing and lanes in
// different collectives are each reported; __shfl_sync reads its source lane, dynamic_smem() is
// the block's shared memory, and the double shuffle, __any_sync and the block reduction work. The
// emulator's own machinery too: each fiber keeps its floating-point control state and runs libc on
// an ABI-aligned stack, the race detector's state does not leak from one block to the next, and
// map() / unmap() hold what cp.async may read.
#include <gtest/gtest.h>

#include <cfenv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "emu.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/mma.cuh"

namespace {

using mds::bf16;
using mds::fp16;
namespace cu = mds::ops::cuda;

class Emu : public ::testing::Test {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
    emu::mapped.clear();
  }
  // One block of `threads` threads.
  static void run(int threads, size_t smem_bytes, const std::function<void()>& kernel) {
    emu::launch({1, 1, 1}, threads, smem_bytes, kernel);
  }
  // Whether some error message contains `text`.
  static bool reported(const std::string& text) {
    for (const std::string& e : emu::errors.first)
      if (e.find(text) != std::string::npos) return true;
    return false;
  }
};

// Puts v in a register's 16-bit half e (0: the low one), the register zero before.
void put(uint32_t& reg, int e, uint16_t v) {
  reg |= uint32_t{v} << (16 * e);
}

template <typename T>
void expect_mma_multiplies() {
  // Small integers: every product and sum is exact in fp32, so D = C + A B exactly.
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> small(-4, 4);
  float a[16][16], b[16][8], c[16][8];
  for (auto& row : a)
    for (float& x : row) x = static_cast<float>(small(rng));
  for (auto& row : b)
    for (float& x : row) x = static_cast<float>(small(rng));
  for (auto& row : c)
    for (float& x : row) x = static_cast<float>(small(rng));

  // PTX ISA, "mma.m16n8k16 fragments" for .bf16 / .f16: lane = 4 groupID + threadID_in_group.
  uint32_t ra[32][4] = {}, rb[32][2] = {};
  float rc[32][4];
  for (int r = 0; r < 16; ++r)
    for (int k = 0; k < 16; ++k)  // A: a0..a7 over rows groupID (+8), columns 2 t (+1) (+8)
      put(ra[4 * (r % 8) + k % 8 / 2][r / 8 + 2 * (k / 8)], k % 2, T(a[r][k]).bits);
  for (int k = 0; k < 16; ++k)
    for (int n = 0; n < 8; ++n)  // B: b0..b3 over rows 2 t (+1) (+8), column groupID
      put(rb[4 * n + k % 8 / 2][k / 8], k % 2, T(b[k][n]).bits);
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n)  // C, D: c0..c3 over rows groupID (+8), columns 2 t (+1)
      rc[4 * (r % 8) + n / 2][2 * (r / 8) + n % 2] = c[r][n];

  emu::launch({1, 1, 1}, 32, 0, [&] {
    const int lane = threadIdx.x;
    cu::mma_m16n8k16<T>(rc[lane], ra[lane], rb[lane][0], rb[lane][1]);
  });
  ASSERT_EQ(emu::errors.count, 0);
  for (int r = 0; r < 16; ++r)
    for (int n = 0; n < 8; ++n) {
      float want = c[r][n];
      for (int k = 0; k < 16; ++k) want += a[r][k] * b[k][n];
      EXPECT_EQ(rc[4 * (r % 8) + n / 2][2 * (r / 8) + n % 2], want)
          << "D(" << r << ", " << n << ")";
    }
}

TEST_F(Emu, MmaBf16OfPtxFragmentsIsCPlusAB) {
  expect_mma_multiplies<bf16>();
}
TEST_F(Emu, MmaFp16OfPtxFragmentsIsCPlusAB) {
  expect_mma_multiplies<fp16>();
}

// Four 8 x 8 matrices of distinct 16-bit values in shared memory, rows `pitch` elements apart (not
// contiguous), loaded by ldmatrix x4 with lane 8 j + r giving row r of matrix j.
void expect_ldmatrix_delivers(bool trans) {
  constexpr int kPitch = 24;  // 48 bytes: each row 16-byte aligned
  std::vector<uint16_t> src(32 * kPitch, 0);
  const auto value = [](int j, int row, int col) { return uint16_t(1000 * j + 10 * row + col); };
  for (int j = 0; j < 4; ++j)
    for (int row = 0; row < 8; ++row)
      for (int col = 0; col < 8; ++col) src[(8 * j + row) * kPitch + col] = value(j, row, col);
  emu::map(src);

  // PTX ISA, "ldmatrix": element (row, col) of matrix j goes to register j of lane 4 row + col / 2
  // (half col % 2); with .trans, of lane 4 col + row / 2 (half row % 2).
  uint32_t want[32][4] = {}, got[32][4] = {};
  for (int j = 0; j < 4; ++j)
    for (int row = 0; row < 8; ++row)
      for (int col = 0; col < 8; ++col) {
        const int lane = trans ? 4 * col + row / 2 : 4 * row + col / 2;
        put(want[lane][j], trans ? row % 2 : col % 2, value(j, row, col));
      }
  emu::launch({1, 1, 1}, 32, src.size() * 2, [&] {
    const int lane = threadIdx.x;
    auto* smem = reinterpret_cast<uint16_t*>(cu::dynamic_smem());
    cu::cp_async_16(smem + lane * kPitch, src.data() + lane * kPitch, true);
    cu::cp_async_commit();
    cu::cp_async_wait<0>();
    __syncthreads();
    if (trans)
      cu::ldmatrix_x4_trans(got[lane], smem + lane * kPitch);
    else
      cu::ldmatrix_x4(got[lane], smem + lane * kPitch);
  });
  ASSERT_EQ(emu::errors.count, 0);
  for (int lane = 0; lane < 32; ++lane)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(got[lane][j], want[lane][j]) << lane << ", " << j;
}

TEST_F(Emu, LdmatrixX4DeliversThePtxElements) {
  expect_ldmatrix_delivers(false);
}
TEST_F(Emu, LdmatrixX4TransDeliversThePtxElements) {
  expect_ldmatrix_delivers(true);
}

TEST_F(Emu, ShuffleXorExchangesLanes) {
  float got[64];
  run(64, 0, [&] {
    const int t = threadIdx.x;
    got[t] = __shfl_xor_sync(0xffffffffu, static_cast<float>(t), 5);
  });
  EXPECT_EQ(emu::errors.count, 0);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(got[t], static_cast<float>(t ^ 5));
}

TEST_F(Emu, ShuffleReadsTheSourceLane) {
  float got[64];
  run(64, 0, [&] {
    const int t = threadIdx.x;
    got[t] = __shfl_sync(0xffffffffu, static_cast<float>(t), (t * 7 + 3) % 32);
  });
  EXPECT_EQ(emu::errors.count, 0);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(got[t], static_cast<float>((t & ~31) + (t * 7 + 3) % 32));
}

// dynamic_smem() (common.cuh) is the block's shared memory: NaN until written, the same for
// every thread.
TEST_F(Emu, DynamicSharedMemoryIsTheBlocksPoisonedBuffer) {
  float first = 0;
  bool same = true;
  const float* seen = nullptr;
  run(32, 64, [&] {
    const auto* tile = reinterpret_cast<const float*>(cu::dynamic_smem());
    if (threadIdx.x == 0) first = tile[0], seen = tile;
    __syncthreads();
    if (tile != seen) same = false;
  });
  EXPECT_EQ(emu::errors.count, 0);
  EXPECT_TRUE(same);
  EXPECT_TRUE(std::isnan(first));
}

// The double shuffle moves all 64 bits; __any_sync sees one lane's predicate in its own warp only;
// blockDim is the launch's; a block_sum (the shim's copy of common.cuh's) gives every thread the
// total, and a statically declared __shared__ array is one per block, not one per thread.
TEST_F(Emu, DoubleShuffleVoteAndBlockSum) {
  double got[64];
  bool any[64];
  double total[64];
  unsigned dim[64];
  run(64, 0, [&] {
    const int t = threadIdx.x;
    got[t] = __shfl_xor_sync(0xffffffffu, 1.0 + t * 0x1p-40, 3);
    any[t] = __any_sync(0xffffffffu, t == 40);
    __shared__ double scratch[32];
    total[t] = cu::block_sum(static_cast<double>(t) + 0x1p-30, scratch);
    dim[t] = blockDim.x;
  });
  EXPECT_EQ(emu::errors.count, 0);
  for (int t = 0; t < 64; ++t) {
    EXPECT_EQ(got[t], 1.0 + (t ^ 3) * 0x1p-40);
    EXPECT_EQ(any[t], t >= 32) << t;
    EXPECT_EQ(total[t], 63 * 64 / 2 + 64 * 0x1p-30) << t;
    EXPECT_EQ(dim[t], 64u);
  }
}

TEST_F(Emu, VoteWithALaneMissingIsReported) {
  run(32, 0, [] {
    if (threadIdx.x != 7) (void)__any_sync(0xffffffffu, 1);
  });
  EXPECT_TRUE(reported("31 of 32 lanes in vote"));
}

// Each thread copies one float into shared memory and reads its neighbour's.
void neighbour_kernel(const std::vector<float>& in, std::vector<float>& out, bool sync) {
  const int t = threadIdx.x, n = static_cast<int>(in.size());
  auto* smem = reinterpret_cast<float*>(mds::ops::cuda::dynamic_smem());
  cu::cp_async_4(smem + t, in.data() + t, true);
  cu::cp_async_commit();
  cu::cp_async_wait<0>();
  if (sync) __syncthreads();
  out[t] = cu::lds(smem + (t + 1) % n);
}

TEST_F(Emu, BarrierMakesOtherThreadsCopiesVisible) {
  std::vector<float> in(128), out(128);
  for (int t = 0; t < 128; ++t) in[t] = static_cast<float>(t);
  emu::map(in);
  for (uint32_t seed : {0u, 11u}) {
    emu::options = {.deferred_copies = seed != 0, .shuffle_seed = seed};
    run(128, 512, [&] { neighbour_kernel(in, out, true); });
    EXPECT_EQ(emu::errors.count, 0) << seed;
    for (int t = 0; t < 128; ++t) EXPECT_EQ(out[t], in[(t + 1) % 128]) << seed;
  }
}

TEST_F(Emu, MissingBarrierIsARace) {
  std::vector<float> in(128, 1.0f), out(128);
  emu::map(in);
  // In order, thread t reads t + 1's float before t + 1 copies it, which t + 1 then overwrites;
  // the last thread reads thread 0's, copied with no barrier since: 2 x 127 + 1 reports.
  run(128, 512, [&] { neighbour_kernel(in, out, false); });
  EXPECT_EQ(emu::errors.count, 255);
  EXPECT_TRUE(reported("thread 0 reads smem+4, not written before"));
  EXPECT_TRUE(reported("thread 1 overwrites smem+4 that thread 0 read with no barrier between"));
  emu::errors = {};
  emu::options = {.shuffle_seed = 11};
  run(128, 512, [&] { neighbour_kernel(in, out, false); });
  EXPECT_GE(emu::errors.count, 128);
}

TEST_F(Emu, ReadBeforeCpAsyncWaitIsReported) {
  std::vector<float> in(32, 1.0f);
  emu::map(in);
  run(32, 128, [&] {
    auto* smem = reinterpret_cast<float*>(cu::dynamic_smem());
    cu::cp_async_4(smem + threadIdx.x, in.data() + threadIdx.x, true);
    cu::cp_async_commit();
    (void)cu::lds(smem + threadIdx.x);
    cu::cp_async_wait<0>();
  });
  EXPECT_TRUE(reported("before waiting for thread"));
}

TEST_F(Emu, ShuffleWithALaneMissingIsReported) {
  run(32, 0, [] {
    if (threadIdx.x != 5) (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
  });
  EXPECT_TRUE(reported("31 of 32 lanes in shfl"));
}

TEST_F(Emu, LanesInDifferentCollectivesAreReported) {
  run(32, 0, [] {
    float c[4] = {};
    const uint32_t a[4] = {};
    if (threadIdx.x == 31)
      cu::mma_m16n8k16<bf16>(c, a, 0, 0);
    else
      (void)__shfl_xor_sync(0xffffffffu, 1.0f, 1);
  });
  EXPECT_TRUE(reported("lane 31 in mma.bf16 while other lanes are in shfl"));
}

TEST_F(Emu, BarrierNotReachedByEveryThreadIsReported) {
  run(64, 0, [] {
    if (threadIdx.x != 3) __syncthreads();
  });
  EXPECT_TRUE(reported("63 threads at a barrier"));
}

// A switch saves and restores the x87 control word and MXCSR: thread 0's rounding mode is its own
// (the x87 one as fegetround sees it, the SSE one as a float sum rounds), not its neighbours' nor
// the scheduler's.
TEST_F(Emu, EachFiberKeepsItsOwnRoundingMode) {
  int mode[64];
  float sum[64];
  run(64, 0, [&] {
    const int t = threadIdx.x;
    if (t == 0) std::fesetround(FE_UPWARD);
    __syncthreads();
    volatile float one = 1.0f, tiny = 1e-10f;
    sum[t] = one + tiny;
    mode[t] = std::fegetround();
  });
  EXPECT_EQ(emu::errors.count, 0);
  EXPECT_EQ(std::fegetround(), FE_TONEAREST);
  for (int t = 0; t < 64; ++t) {
    EXPECT_EQ(mode[t], t == 0 ? FE_UPWARD : FE_TONEAREST) << t;
    EXPECT_EQ(sum[t], t == 0 ? std::nextafter(1.0f, 2.0f) : 1.0f) << t;
  }
}

// Every fiber's stack is 16-byte aligned at calls, as the ABI requires: printf's double formatting
// (aligned SSE spills) works on it, before and after a switch.
TEST_F(Emu, FibersRunLibcOnAlignedStacks) {
  char text[64][32];
  run(64, 0, [&] {
    const int t = threadIdx.x;
    std::snprintf(text[t], sizeof text[t], "%.2f", t + 0.25);
    __syncthreads();
    std::snprintf(text[t] + std::strlen(text[t]), 16, " %.1e", t * 1e10);
  });
  EXPECT_EQ(emu::errors.count, 0);
  char want[32];
  for (int t = 0; t < 64; ++t) {
    std::snprintf(want, sizeof want, "%.2f %.1e", t + 0.25, t * 1e10);
    EXPECT_STREQ(text[t], want);
  }
}

// Blocks share the detector's state, without one block's records showing in the next: a byte the
// block before wrote reads as never written, and one it left a copy in flight to as not pending.
TEST_F(Emu, DetectorStateDoesNotCarryOverToTheNextBlock) {
  std::vector<float> in(32, 1.0f);
  emu::map(in);
  for (bool wait : {true, false}) {
    emu::errors = {};
    emu::launch({2, 1, 1}, 32, 128, [&] {
      auto* smem = reinterpret_cast<float*>(cu::dynamic_smem());
      const int t = threadIdx.x;
      if (blockIdx.x == 0) {
        cu::cp_async_4(smem + t, in.data() + t, true);
        cu::cp_async_commit();
        if (wait) cu::cp_async_wait<0>();
      } else {
        (void)cu::lds(smem + t);
      }
    });
    EXPECT_EQ(reported("thread 0 ends with 1 cp.async never waited for"), !wait);
    EXPECT_TRUE(reported("thread 0 reads smem+0, not written before")) << wait;
    EXPECT_FALSE(reported("before waiting")) << wait;
    EXPECT_EQ(emu::errors.count, wait ? 32 : 33);
  }
}

TEST_F(Emu, MappedRangesAreFoundAndUnmapped) {
  std::vector<float> a(64), b(64);
  emu::map(a.data(), a.size() * sizeof(float));
  emu::map(b);
  EXPECT_TRUE(emu::is_mapped(a.data() + 60, 16));
  EXPECT_FALSE(emu::is_mapped(a.data() + 61, 16));  // past the end
  EXPECT_TRUE(emu::is_mapped(b.data(), 256));
  // A part of a mapped buffer, mapped as well, hides none of the buffer; unmapped, the buffer goes
  // and the part stays.
  emu::map(a.data() + 8, 16);
  EXPECT_TRUE(emu::is_mapped(a.data() + 32, 16));
  EXPECT_TRUE(emu::unmap(a.data()));
  EXPECT_FALSE(emu::unmap(a.data()));
  EXPECT_FALSE(emu::is_mapped(a.data() + 32, 16));
  EXPECT_TRUE(emu::is_mapped(a.data() + 8, 16));

  EXPECT_TRUE(emu::unmap(b.data()));
  run(32, 128, [&] {
    auto* smem = reinterpret_cast<float*>(cu::dynamic_smem());
    cu::cp_async_4(smem + threadIdx.x, b.data() + threadIdx.x, true);
    cu::cp_async_commit();
    cu::cp_async_wait<0>();
  });
  EXPECT_TRUE(reported("not mapped"));
}

}  // namespace
