// The loss curve drawn in the terminal at the end of a run: the training loss as a line of
// Unicode braille (each character cell holds 2 x 4 dots, so a 60 x 15 chart has 120 x 60
// dots) and the validation losses as 'o' marks, with the loss range on the left and the
// iterations below.
//
// Mapping (dot 0 is the top-left one): x = round((it - it_min) / (it_max - it_min) x (2 cols - 1)),
// y = round((loss_max - loss) / (loss_max - loss_min) x (4 rows - 1)); consecutive training
// points are joined by straight dot lines. An empty cell is a space.
#pragma once

#include <string>

#include "mds/train/run_summary.h"

namespace mds::train {

// The chart's lines, each ending in '\n'; "" when there is no training loss to draw.
// Chart lines start with a 10-character label column and an axis character ('┤' where a label
// is, '│' elsewhere), then `cols` cells.
std::string terminal_plot(const LossHistory& h, int cols = 60, int rows = 15);

}  // namespace mds::train
