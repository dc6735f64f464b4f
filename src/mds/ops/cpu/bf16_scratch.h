// The fp32 scratch of the CPU's bf16 reference kernels (bf16_reference.h): bf16 operands widened
// to fp32 (exact) and fp32 results narrowed to bf16 (rounded once), whole buffers or strided
// row views (rows of `width` elements, `stride` apart, of which only the view is touched).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mds/core/bf16.h"

namespace mds::ops::bf16_scratch {

inline std::vector<float> widen(const bf16* x, int64_t n) {
  std::vector<float> out(static_cast<size_t>(n));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<float>(x[i]);
  return out;
}

inline void narrow(bf16* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = bf16(x[i]);
}

// Strided row views: `rows` rows of `width` elements, the rows y_stride / x_stride elements
// apart in the destination / source; the elements between the rows are left alone.
inline void widen_rows(float* y, int64_t y_stride, const bf16* x, int64_t x_stride, int64_t rows,
                       int64_t width) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j)
      y[r * y_stride + j] = static_cast<float>(x[r * x_stride + j]);
}

inline void narrow_rows(bf16* y, int64_t y_stride, const float* x, int64_t x_stride, int64_t rows,
                        int64_t width) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < width; ++j) y[r * y_stride + j] = bf16(x[r * x_stride + j]);
}

}  // namespace mds::ops::bf16_scratch
