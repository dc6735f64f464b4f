#include "mds/optim/adamw.h"

#include <cmath>

#include "mds/core/error.h"

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
    : table_(table),
      o_(opts),
      m_(backend, table.total()),
      v_(backend, table.total()),
      master_(backend) {
  m_.zero();
  v_.zero();
}

double AdamW::step(float* params, const float* grads, double lr) {
  const double norm = global_grad_norm(grads, table_.total(), m_.backend());
  step(params, grads, lr, norm);
  return norm;
}

// One step over every tensor of the table: one(offset, numel, lr, weight decay, gradient scale:
// the clip coefficient times unscale),
// called once per run of adjacent tensors with the same weight decay (an element-wise update,
// so the runs change nothing but the number of kernels).
template <typename StepOne>
void AdamW::each_param(double lr, double norm, double unscale, StepOne&& one) {
  const float scale = float(clip_coefficient(norm, o_.clip_grad) * unscale);
  ++step_;
  int64_t begin = 0, end = 0;
  bool decay = false;
  auto flush = [&] {
    if (end > begin)
      one(begin, end - begin, float(lr), decay ? float(o_.weight_decay) : 0.0f, scale);
  };
  for (const model::ParamInfo& p : table_.params()) {
    if (p.offset != end || p.decay != decay) {
      flush();
      begin = p.offset;
      decay = p.decay;
    }
    end = p.offset + p.numel;
  }
  flush();
}

void AdamW::step(float* params, const float* grads, double lr, double norm, double unscale) {
  each_param(lr, norm, unscale, [&](int64_t o, int64_t n, float lr32, float wd, float scale) {
    m_.backend().adamw_step(params + o, grads + o, m_.data() + o, v_.data() + o, n, lr32,
                            float(o_.beta1), float(o_.beta2), float(o_.eps), wd, step_, scale);
  });
}

template <typename H>
void AdamW::init_master(const H* params) {
  master_.resize(table_.total());
  m_.backend().to_fp32(master_.data(), params, table_.total());
}

template <typename H>
void AdamW::step(H* params, const float* grads, double lr, double norm, double unscale) {
  MDS_ASSERT(master_.size() == table_.total(), "mixed-precision step before init_master()");
  each_param(lr, norm, unscale, [&](int64_t o, int64_t n, float lr32, float wd, float scale) {
    m_.backend().adamw_step(master_.data() + o, params + o, grads + o, m_.data() + o, v_.data() + o,
                            n, lr32, float(o_.beta1), float(o_.beta2), float(o_.eps), wd, step_,
                            scale);
  });
}

template void AdamW::init_master(const bf16*);
template void AdamW::init_master(const fp16*);
template void AdamW::step(bf16*, const float*, double, double, double);
template void AdamW::step(fp16*, const float*, double, double, double);

}  // namespace mds::optim
