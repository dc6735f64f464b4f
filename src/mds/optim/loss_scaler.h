// The loss scale of fp16 training (Megatron's optimizer/grad_scaler.py). fp16 gradients below
// 2^-24 vanish, so the loss (hence every gradient) is multiplied by a scale S before backward,
// and the fp32 gradients are divided by S before the step. A scale too large overflows: some
// gradient becomes inf or NaN, the step is skipped and the scale backs off.
//
// Dynamic (Megatron's DynamicGradScaler, the default of --fp16): start at --initial-loss-scale
// (2^32). An overflow decrements a hysteresis counter (--hysteresis, 2) and, once it is used
// up, halves the scale (never below --min-loss-scale, 1). After --loss-scale-window (1000)
// clean steps in a row the scale doubles and the hysteresis counter is refilled.
// Constant (--loss-scale S): the scale never changes; overflowing steps are still skipped.
#pragma once

#include <cstdint>

namespace mds::optim {

struct LossScalerOptions {
  double loss_scale = 0;                // > 0: a constant scale
  double initial_scale = 4294967296.0;  // 2^32
  double min_scale = 1.0;
  int64_t window = 1000;
  int64_t hysteresis = 2;
};

class LossScaler {
 public:
  // What a checkpoint keeps so that a resumed run continues with the same scale.
  struct State {
    double scale = 1;
    int64_t growth_tracker = 0, hysteresis_tracker = 0;
  };

  explicit LossScaler(const LossScalerOptions& options);

  double scale() const { return state_.scale; }
  bool dynamic() const { return o_.loss_scale <= 0; }
  // After a step's gradients are known: found_inf says whether any was inf or NaN (the step
  // is then skipped by the caller).
  void update(bool found_inf);

  const State& state() const { return state_; }
  void restore(const State& s) { state_ = s; }

 private:
  LossScalerOptions o_;
  State state_;
};

}  // namespace mds::optim
