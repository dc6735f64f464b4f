// Megatron's OptimizerParamScheduler (megatron/optimizer_param_scheduler.py), counted in
// samples as Megatron does: every iteration advances by the global batch.
//
//   warmup (step <= warmup): lr = max_lr * step / warmup
//   then r = (step - warmup) / (decay - warmup):
//     linear   lr = min + (max - min) (1 - r)
//     cosine   lr = min + (max - min) (cos(pi r) + 1) / 2
//     constant lr = max
//   past decay: min_lr.
// The optimizer step of iteration k uses lr(steps before it); the log shows lr after it.
#pragma once

#include <cstdint>
#include <string>

namespace mds::optim {

enum class DecayStyle { constant, linear, cosine };
DecayStyle parse_decay_style(const std::string& name);  // UserError on unknown names

struct LRScheduleOptions {
  double max_lr = 3e-4;
  double min_lr = 0.0;
  DecayStyle style = DecayStyle::cosine;
  int64_t warmup_samples = 0;
  int64_t decay_samples = 0;  // <= 0: no decay past warmup
};

class LRSchedule {
 public:
  explicit LRSchedule(const LRScheduleOptions& opts);
  double lr() const { return lr_at(num_samples_); }
  double lr_at(int64_t samples) const;
  void step(int64_t samples) { num_samples_ += samples; }
  int64_t num_samples() const { return num_samples_; }
  void set_num_samples(int64_t n) { num_samples_ = n; }

 private:
  LRScheduleOptions o_;
  int64_t num_samples_ = 0;
};

}  // namespace mds::optim
