// The training, validation and test datasets of a run, built from the data flags with
// Megatron's sample counts: train = iters x gbs; valid = (iters / eval_interval + 1) x
// eval_iters x gbs (one evaluation per interval plus the final one); test = eval_iters x gbs.
#pragma once

#include <memory>

#include "mds/data/gpt_dataset.h"
#include "mds/train/arguments.h"

namespace mds::train {

struct Datasets {
  std::unique_ptr<data::GPTDataset> train, valid,
      test;  // valid/test null when their split is empty
};

// Opens the data, splits it, builds the sample index maps and prints a summary.
Datasets build_datasets(const TrainArgs& args);

}  // namespace mds::train
