// Helpers shared by the model-level tests: random token ids and the relative L2 distance of two
// tensors (how a gradient is compared when two computations sum in different orders).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

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

}  // namespace mds::test
