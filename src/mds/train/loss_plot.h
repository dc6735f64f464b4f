// The loss curve as a PNG, drawn with cairo (libcairo2): axes with ticks at round values, the
// training loss of every iteration as a line, the validation losses as points joined by a
// dashed line, a legend and a title. Written by rank 0 at the end of a run (see the README for
// where it goes).
#pragma once

#include <string>

#include "mds/train/run_summary.h"

namespace mds::train {

struct PlotOptions {
  int width = 960, height = 540;  // pixels
  std::string title = "lm loss";
};

// Writes the chart to `path` (a UserError when it cannot). No training points: nothing written.
void write_loss_png(const std::string& path, const LossHistory& h, const PlotOptions& o = {});

// Tick values at a 1, 2 or 5 x 10^k step covering [lo, hi] with about `count` ticks (exposed
// for the tests).
std::vector<double> nice_ticks(double lo, double hi, int count);

}  // namespace mds::train
