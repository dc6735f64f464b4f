// The training loop of `mds train`: data, model, optimizer, schedule, logging, evaluation
// and checkpoints, in Megatron-DeepSpeed's order (megatron/training.py: pretrain -> train).
#pragma once

#include "mds/train/arguments.h"

namespace mds::train {

// Runs the whole job; returns the process exit code. User mistakes throw UserError.
int run_training(TrainArgs args);

}  // namespace mds::train
