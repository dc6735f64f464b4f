// Helpers shared by the model-level tests: random token ids, the relative L2 distance of two
// tensors (how a gradient is compared when two computations sum in different orders), and the
// comparison of a model's measured memory with the banner's estimate.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "mds/train/memory_report.h"

namespace mds::test {

// n ids uniform in [0, vocab), from a fixed seed.
inline std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = int32_t(gen() % uint32_t(vocab));
  return ids;
}

// ||a - b|| / ||b|| over n elements, in double.
inline double rel_l2(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// Every category equal, byte for byte.
inline void expect_same_memory(const train::MemoryReport& got, const train::MemoryReport& want) {
  EXPECT_EQ(got.params, want.params);
  EXPECT_EQ(got.grads, want.grads);
  EXPECT_EQ(got.optimizer, want.optimizer);
  EXPECT_EQ(got.activations, want.activations);
  EXPECT_EQ(got.head, want.head);
  EXPECT_EQ(got.scratch, want.scratch);
  EXPECT_EQ(got.total(), want.total());
}

}  // namespace mds::test
