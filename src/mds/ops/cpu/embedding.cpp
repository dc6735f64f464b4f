// Token embedding on the CPU: x[i, :] = table[ids[i] - vocab_begin, :] (zero outside the range).
// The backward scatters rows into the table; repeated ids would race if rows were split across
// threads, so threads own fixed blocks of the hidden dimension instead and every table entry
// sums its contributions in token order: deterministic for any thread count.
#include <cstring>

#include "mds/ops/ops.h"

namespace mds::ops {

void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
    if (r >= 0 && r < rows)
      std::memcpy(x + i * h, table + r * h, sizeof(float) * h);
    else
      std::memset(x + i * h, 0, sizeof(float) * h);
  }
}

void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (h + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t j0 = bl * kBlock, j1 = j0 + kBlock < h ? j0 + kBlock : h;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
      if (r < 0 || r >= rows) continue;
      float* dst = dtable + r * h;
      const float* src = dx + i * h;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) dst[j] += src[j];
    }
  }
}

}  // namespace mds::ops
