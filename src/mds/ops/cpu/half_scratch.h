// The fp32 scratch of the CPU's 16-bit reference kernels (half_reference.h): 16-bit/fp16 operands
// widened to fp32 (exact) and fp32 results narrowed to 16-bit (rounded once), whole buffers or
// strided row views (rows of `width` elements, `stride` apart, of which only the view is touched).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mds/core/fp16.h"

namespace mds::ops::half_scratch {

template <typename H>
std::vector<float> widen(const H* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<float>(x[i]);
  return out;
}

template <typename H>
void narrow(H* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = H(x[i]);
}

// Strided row views: `rows` rows of `width` elements, the rows y_stride / x_stride elements
// apart in the destination / source; the elements between the rows are left alone.
template <typename H>
void widen_rows(float* y, int64_t y_stride, const H* x, int64_t x_stride, int64_t rows,
                int64_t width) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j)
      y[r * y_stride + j] = static_cast<float>(x[r * x_stride + j]);
}

template <typename H>
void narrow_rows(H* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t rows,
                 int64_t width) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j) y[r * y_stride + j] = H(x[r * x_stride + j]);
}

}  // namespace mds::ops::half_scratch
