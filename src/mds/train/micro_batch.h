// Cuts samples of seq_length+1 tokens into a micro-batch: tokens = sample[0..s), targets =
// sample[1..s]. Which samples a data-parallel rank's micro-batch holds is Megatron's
// pretraining sampler's choice (train/sampler.h): read_micro_batch(dataset, consumed +
// megatron_sample_offset(k, micro, D, rank), micro, mb).
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
