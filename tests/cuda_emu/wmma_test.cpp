// The emulator's WMMA stand-in (shim/mma.h, CUDA's <mma.h> for attention_tc.cuh) against its
// definition, so that attention_tc_test's kernels are checked by something that is itself right,
// and can fail: load (row and column major), mma_sync and store give D = C + A B exactly on small
// integers; a misaligned pointer, an ldm off WMMA's multiple and a lane missing are reported; and
// a load that no __syncwarp separates from the other lanes' stores sees their stale values.
#include <gtest/gtest.h>

#include <mma.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <type_traits>

#include "emu.h"
#include "mds/ops/cuda/common.cuh"

namespace {

using mds::bf16;
using mds::fp16;
namespace wmma = nvcuda::wmma;

// One warp, smem_bytes of dynamic shared memory.
void run(size_t smem_bytes, const std::function<void()>& kernel) {
  emu::launch({1, 1, 1}, 32, smem_bytes, kernel);
}
// Whether some error message contains `text`.
bool reported(const std::string& text) {
  for (const std::string& e : emu::errors.first)
    if (e.find(text) != std::string::npos) return true;
  return false;
}

class Wmma : public ::testing::Test {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
  }
};

// Shared memory: A [16][ld] and B [16][ld] in T, C and D [16][cld] in fp32, 32-byte aligned.
constexpr int ld = 24, cld = 20;
constexpr size_t kA = 0, kB = 16 * ld * 2, kC = 2 * kB, kD = kC + 16 * cld * 4, kBytes = kD + kC;

template <typename T, typename LA, typename LB>
void expect_mma_multiplies() {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> small(-4, 4);
  float a[16][16], b[16][16], c[16][16], d[16][16];
  for (auto* m : {&a, &b, &c})
    for (auto& row : *m)
      for (float& x : row) x = static_cast<float>(small(rng));
  constexpr bool a_row = std::is_same_v<LA, wmma::row_major>;
  constexpr bool b_row = std::is_same_v<LB, wmma::row_major>;
  run(kBytes, [&] {
    unsigned char* smem = mds::ops::cuda::dynamic_smem();
    T* as = reinterpret_cast<T*>(smem + kA);
    T* bs = reinterpret_cast<T*>(smem + kB);
    float* cs = reinterpret_cast<float*>(smem + kC);
    float* ds = reinterpret_cast<float*>(smem + kD);
    if (threadIdx.x == 0)
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) {
          as[a_row ? i * ld + j : j * ld + i] = T(a[i][j]);
          bs[b_row ? i * ld + j : j * ld + i] = T(b[i][j]);
          cs[i * cld + j] = c[i][j];
        }
    __syncwarp();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(fa, as, ld);
    wmma::load_matrix_sync(fb, bs, ld);
    wmma::load_matrix_sync(acc, cs, cld, wmma::mem_row_major);
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(ds, acc, cld, wmma::mem_row_major);
    __syncwarp();
    if (threadIdx.x == 0)
      for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) d[i][j] = ds[i * cld + j];
  });
  EXPECT_EQ(emu::errors.count, 0) << (emu::errors.first.empty() ? "" : emu::errors.first[0]);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float want = c[i][j];
      for (int k = 0; k < 16; ++k) want += a[i][k] * b[k][j];
      EXPECT_EQ(d[i][j], want) << i << ", " << j;
    }
}

TEST_F(Wmma, Bf16RowColIsCPlusAB) {
  expect_mma_multiplies<bf16, wmma::row_major, wmma::col_major>();
}
TEST_F(Wmma, Fp16RowRowIsCPlusAB) {
  expect_mma_multiplies<fp16, wmma::row_major, wmma::row_major>();
}
TEST_F(Wmma, Bf16ColRowIsCPlusAB) {
  expect_mma_multiplies<bf16, wmma::col_major, wmma::row_major>();
}

TEST_F(Wmma, MisalignedPointerAndLdmAreReported) {
  run(kBytes, [] {
    auto* cs = reinterpret_cast<float*>(mds::ops::cuda::dynamic_smem() + kC);
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    wmma::store_matrix_sync(cs + 4, acc, cld, wmma::mem_row_major);  // 16 bytes off
    wmma::store_matrix_sync(cs, acc, cld + 2, wmma::mem_row_major);  // ldm 22 floats
  });
  EXPECT_TRUE(reported("is not 256-bit aligned"));
  EXPECT_TRUE(reported("ldm 22 is not a multiple of 4"));
}

TEST_F(Wmma, LoadWithALaneMissingIsReported) {
  run(kBytes, [] {
    auto* cs = reinterpret_cast<float*>(mds::ops::cuda::dynamic_smem() + kC);
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    if (threadIdx.x != 3) wmma::load_matrix_sync(acc, cs, cld, wmma::mem_row_major);
  });
  EXPECT_TRUE(reported("31 of 32 lanes in wmma::load_matrix_sync"));
}

// Lane t writes row t / 2 (two lanes a row, as the kernels do), then the warp loads the tile.
float sum_of_loaded_tile(bool sync) {
  float sum = 0;
  run(kBytes, [&] {
    auto* cs = reinterpret_cast<float*>(mds::ops::cuda::dynamic_smem() + kC);
    const int r = threadIdx.x / 2, c0 = (threadIdx.x % 2) * 8;
    for (int j = 0; j < 8; ++j) cs[r * cld + c0 + j] = 1.0f;
    if (sync) __syncwarp();
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::load_matrix_sync(acc, cs, cld, wmma::mem_row_major);
    if (threadIdx.x == 0)
      for (const auto& row : acc.tile)
        for (float x : row) sum += x;
  });
  return sum;
}

TEST_F(Wmma, LoadSeesOtherLanesStoresOnlyAfterSyncwarp) {
  EXPECT_EQ(sum_of_loaded_tile(true), 256.0f);
  EXPECT_TRUE(std::isnan(sum_of_loaded_tile(false)));  // the poison of rows not yet written
}

}  // namespace
