// Embedding kernels: forward gathers table rows; backward sums rows of repeated ids into the
// table (+=) and gives identical bits for any thread count.
#include <gtest/gtest.h>
#include <omp.h>

#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

constexpr int64_t kVocab = 11;

TEST(Embedding, ForwardGathersRows) {
  const int64_t h = 70;
  const std::vector<int32_t> ids = {3, 0, 10, 3, 7};
  const auto table = test::randn(static_cast<size_t>(kVocab * h), 1);
  std::vector<float> x(ids.size() * h);
  ops::embedding_forward(x.data(), ids.data(), table.data(), static_cast<int64_t>(ids.size()), h);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t j = 0; j < h; ++j) ASSERT_EQ(x[i * h + j], table[ids[i] * h + j]);
}

TEST(Embedding, BackwardSumsRepeatedIdsIntoTable) {
  const int64_t h = 130, n = 40;
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 7) % 5);  // 5 ids, 8x each
  ids[n - 1] = 9;
  const auto dx = test::randn(static_cast<size_t>(n * h), 2);
  std::vector<float> dtable = test::randn(static_cast<size_t>(kVocab * h), 3);
  std::vector<double> expected = test::to_double(dtable);  // += into what was there
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) expected[ids[i] * h + j] += dx[i * h + j];
  ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, h);
  EXPECT_TRUE(test::all_close(dtable, expected, 1e-6, 1e-6));
}

TEST(Embedding, BackwardIdenticalBitsAcrossThreadCounts) {
  const int64_t h = 200, n = 500;
  std::vector<int32_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 13) % 3);
  const auto dx = test::randn(static_cast<size_t>(n * h), 4);
  auto run = [&] {
    std::vector<float> dtable(static_cast<size_t>(kVocab * h), 0.0f);
    ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, h);
    return dtable;
  };
  const auto first = run();
  const auto serial = test::run_single_threaded([&] { return run(); });
  EXPECT_TRUE(test::same_bits(first, serial));
  EXPECT_TRUE(test::same_bits(first, run()));
}

// A vocab-parallel rank holds rows [begin, begin + rows): ids outside give zero rows and no
// gradient, and the ranks' outputs sum to the whole lookup.
TEST(Embedding, VocabRangeSlicesSumToTheWholeLookup) {
  const int64_t h = 9, rows = 4;  // 11 ids over 3 ranks of 4 rows (the last partly unused)
  const std::vector<int32_t> ids = {3, 0, 10, 3, 7, 4};
  const int64_t n = static_cast<int64_t>(ids.size());
  const auto table = test::randn(static_cast<size_t>(3 * rows * h), 5);
  std::vector<float> whole(n * h), sum(n * h, 0.0f);
  ops::embedding_forward(whole.data(), ids.data(), table.data(), n, h);
  const auto dx = test::randn(static_cast<size_t>(n * h), 6);
  std::vector<double> dwhole(3 * rows * h, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) dwhole[ids[i] * h + j] += dx[i * h + j];
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<float> x(n * h, 7.0f), dtable(rows * h, 0.0f);
    ops::embedding_forward(x.data(), ids.data(), table.data() + r * rows * h, n, h, r * rows, rows);
    for (int64_t k = 0; k < n * h; ++k) sum[k] += x[k];
    ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, h, r * rows, rows);
    EXPECT_TRUE(test::all_close(
        dtable,
        std::vector<double>(dwhole.begin() + r * rows * h, dwhole.begin() + (r + 1) * rows * h),
        1e-6, 1e-6));
  }
  EXPECT_TRUE(test::same_bits(sum, whole));
}

}  // namespace
}  // namespace mds
