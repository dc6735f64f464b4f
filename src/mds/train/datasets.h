// The training, validation and test datasets of a run, built from the data flags with
// Megatron's sample counts: train = iters x gbs; valid = (iters / eval_interval + 1) x
// eval_iters x gbs (one evaluation per interval plus the final one); test = eval_iters x gbs.
//
// One `--data-path PREFIX`: a GPTDataset per split serving exactly those counts. Blends
// (`--data-path w1 p1 ...` or `--data-file-list`): weights normalised over all shards, each
// shard asked for ceil(N x w x 1.005) samples of its own split range, shards grouped into
// corpora (sorted by name), each corpus shuffled, corpora interleaved by their sample counts
// (megatron/data/gpt_dataset.py, argonne-lcf Megatron-DeepSpeed). Index maps go through the
// on-disk cache (data/index_cache.h).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "mds/data/data_file_list.h"
#include "mds/data/index_cache.h"
#include "mds/data/sample_dataset.h"
#include "mds/train/arguments.h"

namespace mds::train {

// One row of the startup table: what a corpus contributes.
struct CorpusSummary {
  std::string name;
  double weight = 0;  // normalised
  int64_t shards = 0, documents = 0, tokens = 0;
  std::array<int64_t, 3> samples{};  // train, valid, test samples built for the blend
};

struct DataSummary {
  std::vector<CorpusSummary> corpora;
  std::array<int64_t, 3> requested{};  // the trainer's counts
  int64_t index_built = 0, index_loaded = 0;
  std::string cache_dir;  // where the last index map was read or written
  CorpusSummary total() const;
  std::string table() const;  // lines starting with "> ", ending in '\n'
  std::string json() const;   // one JSON object {"data": {...}} on one line
};

struct DataOptions {
  std::vector<data::DataSource> sources;
  bool blend = false;  // false: one prefix, no 1.005 oversampling, no corpus shuffle
  std::string split = "969, 30, 1";
  int seq_length = 0;
  uint64_t seed = 1234;
  std::array<int64_t, 3> num_samples{};  // train, valid, test
  std::string cache_path;                // --data-cache-path ("" = beside the data)
  int64_t vocab_limit = 0;               // refuse token ids >= this (0: no check)
  data::IndexCache::Role role = data::IndexCache::Role::builder;  // rank 0 builds
};

// Megatron's requested sample counts for a run.
std::array<int64_t, 3> megatron_num_samples(int64_t train_iters, int64_t global_batch,
                                            int64_t eval_interval, int64_t eval_iters);

// Sources from --data-path / --data-file-list and the counts above.
DataOptions data_options(const TrainArgs& args);

struct Datasets {
  std::unique_ptr<data::SampleDataset> train, valid, test;  // valid/test null when empty
  DataSummary summary;
};

// Opens the shards, splits them, builds (or loads) the index maps. Prints nothing: the caller
// prints summary.table() (rank 0 only) and logs summary.json().
Datasets build_datasets(const DataOptions& options);
Datasets build_datasets(const TrainArgs& args);

}  // namespace mds::train
