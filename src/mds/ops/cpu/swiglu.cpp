// SwiGLU on the CPU: gu [n, 2f] = [gate | up] per row  ->  h [n, f] = silu(gate) * up.
// Element-wise, rows in parallel. The backward reads gate and up before writing, so dgu may
// alias gu.
#include <cmath>

#include "mds/ops/cpu/fast_exp.h"
#include "mds/ops/ops.h"

namespace mds::ops {

void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* g = gu + i * 2 * f;
    const float* u = g + f;
    float* hr = h + i * f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) hr[j] = g[j] / (1.0f + fast_exp(-g[j])) * u[j];
  }
}

// silu'(g) = sig(g) * (1 + g * (1 - sig(g)));  dgate = dh * up * silu'(g),  dup = dh * silu(g).
void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n, int64_t f) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* g = gu + i * 2 * f;
    const float* u = g + f;
    const float* dhr = dh + i * f;
    float* dg = dgu + i * 2 * f;
    float* du = dg + f;
#pragma omp simd
    for (int64_t j = 0; j < f; ++j) {
      const float gj = g[j], uj = u[j];
      const float sig = 1.0f / (1.0f + fast_exp(-gj));
      dg[j] = dhr[j] * uj * sig * (1.0f + gj * (1.0f - sig));
      du[j] = dhr[j] * gj * sig;
    }
  }
}

}  // namespace mds::ops
