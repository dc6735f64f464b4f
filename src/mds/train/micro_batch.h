// Cuts samples of seq_length+1 tokens into a micro-batch: tokens = sample[0..s), targets =
// sample[1..s]. Megatron's pretraining sampler reads the global batch sequentially from
// consumed_samples; the micro-batches of one step are consecutive slices of it.
#pragma once

#include <cstdint>
#include <vector>

#include "mds/data/sample_dataset.h"

namespace mds::train {

struct MicroBatch {
  int64_t b = 0, s = 0;
  std::vector<int32_t> tokens, targets;  // [b, s] each
};

// Reads samples [first, first + b) (modulo the dataset size) into mb. The dataset's vocab
// limit (set_vocab_limit) rejects ids the model cannot embed.
void read_micro_batch(const data::SampleDataset& dataset, int64_t first, int64_t b, MicroBatch& mb);

}  // namespace mds::train
