#include "mds/optim/loss_scaler.h"

#include <algorithm>

namespace mds::optim {

LossScaler::LossScaler(const LossScalerOptions& options) : o_(options) {
  state_.scale = dynamic() ? o_.initial_scale : o_.loss_scale;
  state_.hysteresis_tracker = o_.hysteresis;
}

void LossScaler::update(bool found_inf) {
  if (!dynamic()) return;
  State& s = state_;
  if (found_inf) {
    s.growth_tracker = 0;
    if (--s.hysteresis_tracker <= 0) s.scale = std::max(s.scale * 0.5, o_.min_scale);
    return;
  }
  if (++s.growth_tracker == o_.window) {
    s.growth_tracker = 0;
    s.hysteresis_tracker = o_.hysteresis;
    s.scale *= 2.0;
  }
}

}  // namespace mds::optim
