// Megatron's pretraining sampler (megatron/data/data_samplers.py, MegatronPretrainingSampler):
// which samples each data-parallel rank reads in a step.
//
// A step reads its global batch sequentially from consumed_samples. The batch is cut into
// chunks of micro x D consecutive samples, one chunk per micro-batch, and each chunk is split
// by DP rank: rank r takes the r-th run of micro samples. So rank r's k-th micro-batch of the
// step is samples [consumed + (k x D + r) x micro, ... + micro). Because this depends on
// nothing but consumed_samples, resuming at consumed_samples = N continues the stream exactly,
// and no sample before N is read.
#pragma once

#include <cstdint>

namespace mds::train {

// First sample of data-parallel rank dp_rank's k-th micro-batch of a step, relative to the
// step's consumed_samples (add consumed_samples to get the dataset index).
// k in [0, grad_accum), micro > 0, dp_rank in [0, dp_size).
int64_t megatron_sample_offset(int64_t k, int64_t micro, int64_t dp_size, int64_t dp_rank);

}  // namespace mds::train
