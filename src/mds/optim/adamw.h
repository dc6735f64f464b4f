// AdamW over a flat parameter buffer (torch.optim.AdamW semantics), driven by the ParamTable:
// weight decay applies to matrices only, never to 1-D tensors (norm weights), as Megatron's
// parameter groups do. Moments m, v mirror the buffer. Global-norm gradient clipping
// (Megatron's clip_grads: coeff = clip / (norm + 1e-6), applied when below 1) is folded into
// the step as a gradient scale. The moments live on the model's backend (ops/backend.h), and
// so do the parameter and gradient pointers the steps take.
#pragma once

#include <cstdint>

#include "mds/core/buffer.h"
#include "mds/model/params.h"

namespace mds::optim {

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;
  double clip_grad = 1.0;  // <= 0: no clipping
};

class AdamW {
 public:
  AdamW(const model::ParamTable& table, const AdamWOptions& opts,
        ops::Backend& backend = ops::cpu_backend());

  // Clips by global norm (computed here, returned) and applies one step at learning rate lr.
  double step(float* params, const float* grads, double lr);
  // The same with the global norm given: a sharded model's norm spans every rank's shard.
  // unscale multiplies the gradients first: 1 / the loss scale of an fp16 run, whose grads
  // are scaled by it (grad_norm is then the norm of the unscaled gradients).
  void step(float* params, const float* grads, double lr, double grad_norm, double unscale = 1);
  int64_t steps_taken() const { return step_; }
  Buffer<float>& exp_avg() { return m_; }
  // Bytes the optimizer holds: the moments and, in mixed precision, the fp32 master.
  int64_t allocated_bytes() const {
    return (m_.capacity() + v_.capacity() + master_.capacity()) * int64_t(sizeof(float));
  }
  Buffer<float>& exp_avg_sq() { return v_; }

  // ---- Mixed precision (Megatron's Float16OptimizerWithFloat16Params) ----------------------
  // The model's weights are H (bf16 or fp16); the optimizer keeps their fp32 master copy, made
  // from them (fp32(H weights), as Megatron clones them), and every step updates the master and
  // writes its H rounding back into the model: the gradients are fp32 throughout.
  template <typename H>
  void init_master(const H* params);
  template <typename H>
  void step(H* params, const float* grads, double lr, double grad_norm, double unscale = 1);
  Buffer<float>& master() { return master_; }  // empty before init_master
  const Buffer<float>& master() const { return master_; }

 private:
  const model::ParamTable& table_;
  AdamWOptions o_;
  Buffer<float> m_, v_;
  Buffer<float> master_;  // mixed precision only
  int64_t step_ = 0;
  template <typename StepOne>
  void each_param(double lr, double grad_norm, double unscale, StepOne&& one);
};

// L2 norm over a whole gradient buffer of the backend, accumulated in double.
double global_grad_norm(const float* grads, int64_t n, ops::Backend& backend = ops::cpu_backend());
// Megatron's clip coefficient for a given norm (1 when no clipping is needed).
double clip_coefficient(double norm, double clip_grad);

}  // namespace mds::optim
