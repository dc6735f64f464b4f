#include "mds/optim/lr_schedule.h"

#include <cmath>

#include "mds/core/error.h"

namespace mds::optim {

DecayStyle parse_decay_style(const std::string& name) {
  if (name == "constant") return DecayStyle::constant;
  if (name == "linear") return DecayStyle::linear;
  if (name == "cosine") return DecayStyle::cosine;
  MDS_FAIL("unknown --lr-decay-style '{}' (use cosine, linear or constant)", name);
}

LRSchedule::LRSchedule(const LRScheduleOptions& opts) : o_(opts) {
  MDS_CHECK(o_.max_lr >= 0 && o_.min_lr >= 0, "--lr and --min-lr must be non-negative");
  MDS_CHECK(o_.min_lr <= o_.max_lr, "--min-lr ({}) must not exceed --lr ({})", o_.min_lr,
            o_.max_lr);
  MDS_CHECK(o_.decay_samples <= 0 || o_.warmup_samples < o_.decay_samples,
            "the warmup ({} samples) must be shorter than the decay ({} samples): lower "
            "--lr-warmup-iters/--lr-warmup-fraction or raise --lr-decay-iters",
            o_.warmup_samples, o_.decay_samples);
}

double LRSchedule::lr_at(int64_t step) const {
  if (o_.warmup_samples > 0 && step <= o_.warmup_samples)
    return o_.max_lr * double(step) / double(o_.warmup_samples);
  if (o_.style == DecayStyle::constant || o_.decay_samples <= 0) return o_.max_lr;
  if (step > o_.decay_samples) return o_.min_lr;
  const double r = double(step - o_.warmup_samples) / double(o_.decay_samples - o_.warmup_samples);
  const double coeff = o_.style == DecayStyle::linear ? 1.0 - r : 0.5 * (std::cos(M_PI * r) + 1.0);
  return o_.min_lr + (o_.max_lr - o_.min_lr) * coeff;
}

}  // namespace mds::optim
