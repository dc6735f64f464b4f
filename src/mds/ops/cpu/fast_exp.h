// A vectorisable exp() for the CPU kernels (attention's online softmax, cross entropy, SwiGLU).
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>

namespace mds::ops {

// exp(x) for x in [-2.9e6, 88], relative error < 1e-7 (Cephes expf polynomial); results below
// 2^-126 (x < -87.3) flush to 0. Written without branches or float->int conversions (the
// 1.5 * 2^23 rounding trick; an integer clamp of the exponent) so that `omp simd` loops
// calling it vectorise under the default -ftrapping-math.
inline float fast_exp(float x) {
  const float shifted = x * 1.44269504088896341f + 12582912.0f;  // low mantissa bits = round(n)
  const float n = shifted - 12582912.0f;
  float r = x - n * 0.693359375f;  // ln2 split in two so that the reduction is exact
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t e = std::bit_cast<int32_t>(shifted) - 0x4B400000 + 127;  // biased exponent of 2^n
  e = std::min(std::max(e, 0), 254);
  return p * std::bit_cast<float>(e << 23);
}

}  // namespace mds::ops
