// RMSNorm on the CPU: y = x * rstd * w with rstd = 1/sqrt(mean(x^2) + eps), per row of h.
// The sum of squares and the backward's row dot product accumulate in double, so rstd is the
// fp32 rounding of the exact value whatever h is. Rows run in parallel; the weight gradient is
// reduced per fixed column block over all rows in order, so it is deterministic for any
// thread count.
#include <cmath>
#include <cstring>

#include "mds/ops/ops.h"

namespace mds::ops {

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                     float eps) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * h;
    float* yr = y + i * h;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < h; ++j) ss += static_cast<double>(xr[j]) * xr[j];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(h) + eps));
    rstd[i] = r;
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) yr[j] = xr[j] * r * w[j];
  }
}

// With xhat = x * r:  dx = r * (w*dy - xhat * mean(w*dy*xhat)),  dw += sum_rows dy * xhat.
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t h) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* xr = x + i * h;
    const float* dyr = dy + i * h;
    float* dxr = dx + i * h;
    const float r = rstd[i];
    double dot = 0.0;  // sum_j dy_j w_j x_j
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < h; ++j) dot += static_cast<double>(dyr[j]) * w[j] * xr[j];
    const float c = static_cast<float>(dot * r * r * r / static_cast<double>(h));
#pragma omp simd
    for (int64_t j = 0; j < h; ++j) dxr[j] += r * w[j] * dyr[j] - c * xr[j];
  }
  // Column blocks of a fixed width: each column's sum runs over the rows in order.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (h + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static)
  for (int64_t bl = 0; bl < blocks; ++bl) {
    const int64_t j0 = bl * kBlock, j1 = j0 + kBlock < h ? j0 + kBlock : h;
    float acc[kBlock] = {};
    for (int64_t i = 0; i < n; ++i) {
      const float r = rstd[i];
      const float* xr = x + i * h;
      const float* dyr = dy + i * h;
#pragma omp simd
      for (int64_t j = j0; j < j1; ++j) acc[j - j0] += dyr[j] * xr[j] * r;
    }
    for (int64_t j = j0; j < j1; ++j) dw[j] += acc[j - j0];
  }
}

// The fused forms are the add and the plain kernels in sequence on the CPU (the fusion saves a
// pass over memory on the GPU; here it changes no arithmetic).
void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                              const float* r, const float* w, int64_t n, int64_t h, float eps) {
  add(resid_out, x, r, n * h);
  rmsnorm_forward(y, rstd, resid_out, w, n, h, eps);
}

void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                               const float* resid_out, const float* w, const float* rstd, int64_t n,
                               int64_t h) {
  const size_t bytes = sizeof(float) * static_cast<size_t>(n * h);
  if (!dresid)
    std::memset(dsum, 0, bytes);
  else if (dresid != dsum)
    std::memcpy(dsum, dresid, bytes);
  rmsnorm_backward(dsum, dw, dy, resid_out, w, rstd, n, h);
}

}  // namespace mds::ops
