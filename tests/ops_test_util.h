// Shared helpers for the kernel tests: seeded random fills, central finite differences in
// double, and tolerance comparisons that report the worst element.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace mds::test {

// n samples of N(0, scale^2), reproducible from the seed.
inline std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> out(n);
  for (auto& x : out) x = dist(gen);
  return out;
}

inline std::vector<double> to_double(const std::vector<float>& x) {
  return {x.begin(), x.end()};
}

// Up to k distinct indices in [0, n), sorted; all of them when n <= k.
inline std::vector<size_t> sample_indices(size_t n, size_t k, uint32_t seed) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  if (n <= k) return idx;
  std::mt19937 gen(seed);
  std::shuffle(idx.begin(), idx.end(), gen);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

// Central differences (f(x + eps e_i) - f(x - eps e_i)) / 2 eps at the given indices, with x and
// f in double so that the only error is the O(eps^2) truncation term.
inline std::vector<double> finite_differences(
    const std::function<double(const std::vector<double>&)>& f, std::vector<double> x,
    const std::vector<size_t>& idx, double eps = 1e-4) {
  std::vector<double> grad;
  grad.reserve(idx.size());
  for (size_t i : idx) {
    const double x0 = x[i];
    x[i] = x0 + eps;
    const double up = f(x);
    x[i] = x0 - eps;
    const double down = f(x);
    x[i] = x0;
    grad.push_back((up - down) / (2 * eps));
  }
  return grad;
}

// |actual - expected| <= atol + rtol * |expected| everywhere, where atol is relative to the
// largest |expected| (fp32 kernels against double references). Reports the worst element.
inline ::testing::AssertionResult all_close(const std::vector<float>& actual,
                                            const std::vector<double>& expected, double rtol,
                                            double atol_rel = 1e-5) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "size " << actual.size() << " vs expected " << expected.size();
  double scale = 0.0;
  for (double e : expected) scale = std::max(scale, std::fabs(e));
  const double atol = atol_rel * std::max(scale, 1e-30);
  size_t worst = 0, bad = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double err = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    const double excess = err - (atol + rtol * std::fabs(expected[i]));
    if (!(excess <= 0.0)) ++bad;  // also counts NaN
    if (!(excess <= worst_excess)) worst_excess = excess, worst = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << actual.size() << " elements differ; worst at " << worst << ": got "
         << actual[worst] << ", expected " << expected[worst] << " (max |expected| " << scale
         << ", rtol " << rtol << ")";
}

// Values at the given indices of a float vector, as doubles-compatible floats.
inline std::vector<float> gather(const std::vector<float>& x, const std::vector<size_t>& idx) {
  std::vector<float> out;
  out.reserve(idx.size());
  for (size_t i : idx) out.push_back(x[i]);
  return out;
}

// Bitwise equality of two float vectors (determinism checks).
inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](float x, float y) {
           return std::bit_cast<uint32_t>(x) == std::bit_cast<uint32_t>(y);
         });
}

// f() run on one OpenMP thread (the count is restored after): the kernels promise the same
// bits for every thread count, so a determinism test compares this with a threaded run.
template <typename F>
auto run_single_threaded(F&& f) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  auto result = f();
  omp_set_num_threads(threads);
  return result;
}

}  // namespace mds::test
