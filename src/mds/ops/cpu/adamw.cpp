// AdamW on the CPU with torch.optim.AdamW's (single-tensor, torch 1.13) operation order:
// scalar coefficients are formed in double (as Python floats are) and rounded to fp32 once;
// the per-element arithmetic is fp32, so a step matches PyTorch to the last bit or two.
#include <cmath>

#include "mds/ops/adamw_coefficients.h"
#include "mds/ops/ops.h"

namespace mds::ops {

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale) {
  const AdamWCoefficients c = adamw_coefficients(lr, beta1, beta2, weight_decay, step);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * grad_scale;
    p[i] *= c.decay;
    m[i] = m[i] * beta1 + gi * c.one_minus_b1;
    v[i] = v[i] * beta2 + gi * gi * c.one_minus_b2;
    const float denom = std::sqrt(v[i]) / c.bias2_sqrt + eps;
    p[i] -= c.step_size * (m[i] / denom);
  }
}

}  // namespace mds::ops
