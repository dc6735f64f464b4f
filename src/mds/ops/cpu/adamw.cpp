// AdamW on the CPU with torch.optim.AdamW's (single-tensor, torch 1.13) operation order:
// scalar coefficients are formed in double (as Python floats are) and rounded to fp32 once;
// the per-element arithmetic is fp32, so a step matches PyTorch to the last bit or two.
#include <cmath>

#include "mds/ops/ops.h"

namespace mds::ops {

void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale) {
  const double b1 = beta1, b2 = beta2;
  const auto decay = static_cast<float>(1.0 - static_cast<double>(lr) * weight_decay);
  const auto one_minus_b1 = static_cast<float>(1.0 - b1);
  const auto one_minus_b2 = static_cast<float>(1.0 - b2);
  const double bias1 = 1.0 - std::pow(b1, static_cast<double>(step));
  const double bias2 = 1.0 - std::pow(b2, static_cast<double>(step));
  const auto step_size = static_cast<float>(static_cast<double>(lr) / bias1);
  const auto bias2_sqrt = static_cast<float>(std::sqrt(bias2));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * grad_scale;
    p[i] *= decay;
    m[i] = m[i] * beta1 + gi * one_minus_b1;
    v[i] = v[i] * beta2 + gi * gi * one_minus_b2;
    const float denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    p[i] -= step_size * (m[i] / denom);
  }
}

}  // namespace mds::ops
