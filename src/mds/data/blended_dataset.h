// Blending of several datasets with Megatron-DeepSpeed's (argonne-lcf) semantics:
//
// - CorpusDataset: the shards of one corpus concatenated in list order (helpers.cpp
//   build_concat_indices), their samples served in an order shuffled with the seed
//   (np.random.RandomState(seed).shuffle(arange(n)), --shuffle-sample-in-corpus).
// - BlendedDataset: corpora interleaved by helpers.cpp build_blending_indices: at step t take
//   the corpus d maximising w_d * max(t, 1) - count_d (ties to the lowest index), so after
//   every prefix of the stream each corpus's count is within one sample of its share.
// See megatron/data/gpt_dataset.py (BuildCorpusDataset) and blendable_dataset.py.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mds/data/sample_dataset.h"

namespace mds::data {

class CorpusDataset : public SampleDataset {
 public:
  // parts: the corpus's shards (non-empty, equal seq_length), concatenated in this order.
  CorpusDataset(std::vector<std::unique_ptr<SampleDataset>> parts, uint64_t seed);
  int64_t size() const override { return offsets_.back(); }
  int seq_length() const override { return parts_.front()->seq_length(); }
  void sample(int64_t i, int32_t* out) const override;

 private:
  std::vector<std::unique_ptr<SampleDataset>> parts_;
  std::vector<int64_t> offsets_;  // [parts + 1]: first concatenated index of each part
  std::vector<int64_t> shuffle_;  // [size]: position -> concatenated index
};

// build_blending_indices: for each of `size` steps, which dataset and which of its samples.
struct BlendingIndices {
  std::vector<int32_t> dataset;  // [size]
  std::vector<int64_t> sample;   // [size]: the k-th draw from that dataset
};
// weights: non-negative, normalised here (Megatron's BlendableDataset divides by their sum).
BlendingIndices build_blending_indices(std::span<const double> weights, int64_t size);

class BlendedDataset : public SampleDataset {
 public:
  // size samples drawn from parts by weight; a part asked for more samples than it has wraps
  // around (cannot happen with Megatron's counts: each part holds >= its share).
  BlendedDataset(std::vector<std::unique_ptr<SampleDataset>> parts, std::vector<double> weights,
                 int64_t size);
  int64_t size() const override { return int64_t(index_.dataset.size()); }
  int seq_length() const override { return parts_.front()->seq_length(); }
  void sample(int64_t i, int32_t* out) const override;
  const BlendingIndices& indices() const { return index_; }

 private:
  std::vector<std::unique_ptr<SampleDataset>> parts_;
  BlendingIndices index_;
};

}  // namespace mds::data
