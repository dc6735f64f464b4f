// Element-wise kernels, the sum of squares (gradient-norm clipping) and the non-finite check
// (loss scaling) on the CPU.
// sum_squares adds fixed-size chunks in double and then the chunk sums in order, so its result
// depends neither on the thread count nor on the schedule.
#include <cmath>
#include <cstddef>
#include <vector>

#include "mds/ops/ops.h"

namespace mds::ops {

void add(float* y, const float* a, const float* b, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void scale_inplace(float* y, float alpha, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] *= alpha;
}

double sum_squares(const float* x, int64_t n) {
  constexpr int64_t kChunk = 1 << 14;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks));
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kChunk, i1 = i0 + kChunk < n ? i0 + kChunk : n;
    double acc = 0.0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = i0; i < i1; ++i) acc += static_cast<double>(x[i]) * x[i];
    partial[static_cast<size_t>(c)] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

bool any_non_finite(const float* x, int64_t n) {
  bool found = false;
#pragma omp parallel for simd schedule(static) reduction(|| : found)
  for (int64_t i = 0; i < n; ++i) found = found || !std::isfinite(x[i]);
  return found;
}

}  // namespace mds::ops
