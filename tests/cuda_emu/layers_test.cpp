// The SwiGLU, RoPE and embedding kernels (src/mds/ops/cuda/swiglu.cuh, rope.cuh, embedding.cuh),
// their source unmodified, run on the CPU under the CUDA emulator against the CPU kernels
// (ops/cpu/swiglu.cpp, rope.cpp, embedding.cpp; the 16-bit reference ops/cpu/half_elementwise.h)
// in fp32, bf16 and fp16, at the GPU tests' tolerances:
//   - SwiGLU forward and backward, f 300 (past one block of 256, not a multiple of it), the
//     backward also in place (dgu over gu);
//   - RoPE forward and backward with a row stride past the heads (the padding left as it was),
//     a position offset, and 9 heads of 64 (288 pairs: past one block);
//   - the embedding forward over a vocabulary range, bit for bit (a copy; ids outside give
//     zeros), h 200 (past one block of 128).
// The embedding backward sorts with CUB's radix sort, which the emulator cannot run: here its
// two kernels run around std::stable_sort of the same (row, position) pairs (what a stable
// radix sort yields), bit for bit against the CPU; the sort itself is left to the GPU tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "kernel_test_util.h"
#include "mds/ops/cpu/half_reference.h"
#include "mds/ops/cuda/embedding.cuh"
#include "mds/ops/cuda/rope.cuh"
#include "mds/ops/cuda/swiglu.cuh"
#include "mds/ops/ops.h"

namespace {

using namespace emu_test;  // NOLINT(google-build-using-namespace): the test helpers
using mds::test::randn;
namespace cu = mds::ops::cuda;

constexpr int kThreads = 256;  // swiglu.cu's and rope.cu's

template <typename T>
class EmuLayers : public EmuTest {};
TYPED_TEST_SUITE(EmuLayers, StorageTypes, StorageName);

TYPED_TEST(EmuLayers, SwigluForwardAndBackwardMatchCpuIncludingInPlace) {
  using T = TypeParam;
  constexpr int64_t n = 3, f = 300;
  const auto gu = store<T>(randn(n * 2 * f, 31, 2.0f)), dh = store<T>(randn(n * f, 32));
  std::vector<T> h(n * f), h_cpu(n * f), dgu(n * 2 * f), dgu_cpu(n * 2 * f);
  // swiglu.cu: blocks_for(n, 1) blocks, a block per row.
  launch(blocks_for(n, 1), 1, kThreads,
         [&] { cu::swiglu_kernels::swiglu_forward_kernel<T>(h.data(), gu.data(), n, f); });
  mds::ops::swiglu_forward(h_cpu.data(), gu.data(), n, f);
  EXPECT_TRUE(close_to_cpu(h, h_cpu, kFp32Elementwise));
  launch(blocks_for(n, 1), 1, kThreads, [&] {
    cu::swiglu_kernels::swiglu_backward_kernel<T>(dgu.data(), dh.data(), gu.data(), n, f);
  });
  mds::ops::swiglu_backward(dgu_cpu.data(), dh.data(), gu.data(), n, f);
  EXPECT_TRUE(close_to_cpu(dgu, dgu_cpu, kFp32Elementwise));
  std::vector<T> in_place = gu;  // dgu may alias gu
  launch(blocks_for(n, 1), 1, kThreads, [&] {
    cu::swiglu_kernels::swiglu_backward_kernel<T>(in_place.data(), dh.data(), in_place.data(), n,
                                                  f);
  });
  EXPECT_EQ(bits(in_place), bits(dgu));
}

TYPED_TEST(EmuLayers, RopeForwardAndBackwardMatchCpuWithStrideAndOffset) {
  using T = TypeParam;
  constexpr int64_t b = 2, s = 3, heads = 9, hd = 64, stride = heads * hd + 40, pos0 = 5;
  std::vector<float> cos((pos0 + s) * hd / 2), sin(cos.size());
  mds::ops::rope_tables(cos.data(), sin.data(), pos0 + s, hd, 10000.0);
  const auto x0 = store<T>(randn(b * s * stride, 33));
  for (const float sign : {1.0f, -1.0f}) {
    std::vector<T> x = x0, x_cpu = x0;
    // rope.cu: blocks_for(b * s, 1) blocks, a block per token row.
    launch(blocks_for(b * s, 1), 1, kThreads, [&] {
      cu::rope_kernels::rope_kernel<T>(x.data(), cos.data(), sin.data(), b * s, s,
                                       static_cast<int>(heads), static_cast<int>(hd / 2), stride,
                                       pos0, sign);
    });
    if (sign > 0)
      mds::ops::rope_forward(x_cpu.data(), cos.data(), sin.data(), b, s, heads, hd, stride, pos0);
    else
      mds::ops::rope_backward(x_cpu.data(), cos.data(), sin.data(), b, s, heads, hd, stride, pos0);
    EXPECT_TRUE(close_to_cpu(x, x_cpu, kFp32Elementwise)) << "sign " << sign;
    for (int64_t row = 0; row < b * s; ++row)  // the padding after each row's heads
      for (int64_t j = heads * hd; j < stride; ++j)
        ASSERT_EQ(bits(std::vector<T>{x[row * stride + j]}),
                  bits(std::vector<T>{x0[row * stride + j]}));
  }
}

// Ids in [100, 100 + 6) are this rank's rows; the others (below, above, repeated) are not.
const std::vector<int32_t> kIds = {100, 105, 99, 103, 100, 106, 0, 103, 104, 100};
constexpr int64_t kVocabBegin = 100, kRows = 6, kH = 200;

TYPED_TEST(EmuLayers, EmbeddingForwardMatchesCpuBitForBit) {
  using T = TypeParam;
  const int64_t n = static_cast<int64_t>(kIds.size());
  const auto table = store<T>(randn(kRows * kH, 34));
  std::vector<T> x(n * kH, T(7.0f)), x_cpu(n * kH);
  // embedding.cu: blocks_for(n, 1) blocks of its kThreads, a block per token.
  launch(blocks_for(n, 1), 1, cu::embedding_kernels::kThreads, [&] {
    cu::embedding_kernels::embedding_forward_kernel<T>(x.data(), kIds.data(), table.data(), n, kH,
                                                       kVocabBegin, kRows);
  });
  mds::ops::embedding_forward(x_cpu.data(), kIds.data(), table.data(), n, kH, kVocabBegin, kRows);
  EXPECT_EQ(bits(x), bits(x_cpu));
}

TYPED_TEST(EmuLayers, EmbeddingBackwardKernelsAroundAStableSortMatchCpuBitForBit) {
  using T = TypeParam;
  namespace ek = cu::embedding_kernels;
  const int64_t n = static_cast<int64_t>(kIds.size());
  const auto dx = store<T>(randn(n * kH, 35));
  const std::vector<float> dtable0 = randn(kRows * kH, 36);
  std::vector<uint32_t> keys(n);
  std::vector<int32_t> positions(n);
  launch(blocks_for(n, ek::kThreads), 1, ek::kThreads, [&] {
    ek::row_keys_kernel(keys.data(), positions.data(), kIds.data(), n, kVocabBegin, kRows);
  });
  // CUB's SortPairs in embedding.cu: stable, by key.
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return keys[a] < keys[b]; });
  std::vector<uint32_t> sorted_keys(n);
  std::vector<int32_t> sorted_positions(n);
  for (int64_t i = 0; i < n; ++i)
    sorted_keys[i] = keys[order[i]], sorted_positions[i] = positions[order[i]];

  std::vector<float> dtable = dtable0, dtable_cpu = dtable0;
  const auto col_blocks = static_cast<unsigned>((kH + ek::kThreads - 1) / ek::kThreads);
  launch(static_cast<unsigned>(n), col_blocks, ek::kThreads, [&] {
    ek::embedding_backward_kernel<T>(dtable.data(), dx.data(), sorted_keys.data(),
                                     sorted_positions.data(), n, kH, kRows);
  });
  mds::ops::embedding_backward(dtable_cpu.data(), dx.data(), kIds.data(), n, kH, kVocabBegin,
                               kRows);
  EXPECT_EQ(bits(dtable), bits(dtable_cpu));
}

}  // namespace
