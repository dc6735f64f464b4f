#include "mds/optim/adamw.h"

#include <cmath>

namespace mds::optim {

double global_grad_norm(const float* grads, int64_t n, ops::Backend& backend) {
  return std::sqrt(backend.sum_squares(grads, n));
}

double clip_coefficient(double norm, double clip_grad) {
  if (clip_grad <= 0) return 1.0;
  const double coeff = clip_grad / (norm + 1e-6);
  return coeff < 1.0 ? coeff : 1.0;
}

AdamW::AdamW(const model::ParamTable& table, const AdamWOptions& opts, ops::Backend& backend)
    : table_(table), o_(opts), m_(backend, table.total()), v_(backend, table.total()) {
  m_.zero();
  v_.zero();
}

double AdamW::step(float* params, const float* grads, double lr) {
  const double norm = global_grad_norm(grads, table_.total(), m_.backend());
  step(params, grads, lr, norm);
  return norm;
}

void AdamW::step(float* params, const float* grads, double lr, double norm) {
  const float scale = float(clip_coefficient(norm, o_.clip_grad));
  ++step_;
  for (const model::ParamInfo& p : table_.params()) {
    const int64_t o = p.offset;
    m_.backend().adamw_step(params + o, grads + o, m_.data() + o, v_.data() + o, p.numel, float(lr),
                            float(o_.beta1), float(o_.beta2), float(o_.eps),
                            p.decay ? float(o_.weight_decay) : 0.0f, step_, scale);
  }
}

}  // namespace mds::optim
