// Megatron's GPTDataset over one indexed dataset: documents of one split, shuffled per epoch
// with the seed, cut into samples of seq_length+1 tokens that run across document boundaries
// (adjacent samples share one boundary token), served in a shuffled order. The index maps are
// bit-identical to Megatron + numpy's (megatron/data/gpt_dataset.py _build_index_mappings,
// _build_doc_idx, _build_shuffle_idx and helpers.cpp build_sample_idx).
// A "document" here is a sequence of the indexed dataset, as in Megatron (sizes.shape[0]).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mds/data/indexed_dataset.h"
#include "mds/data/sample_dataset.h"

namespace mds::data {

// --split "969,30,1" (or "969/30/1", or "1") -> document ranges [begin, end) for train, valid,
// test, rounded like Megatron's get_train_valid_test_split_ (round-half-even, the rounding
// error taken off every boundary so the last one is num_docs).
std::array<std::pair<int64_t, int64_t>, 3> split_documents(const std::string& split,
                                                           int64_t num_docs);

// The three index maps of _build_index_mappings for documents [doc_begin, doc_end) of sizes.
struct GPTIndexMaps {
  int num_epochs = 0;
  bool separate_last_epoch = false;
  std::vector<int32_t> doc_idx;      // documents over all epochs, shuffled
  std::vector<int64_t> sample_idx;   // [(n+1) x 2]: (position in doc_idx, token offset)
  std::vector<int64_t> shuffle_idx;  // [n]: sample order
  int64_t num_built_samples() const { return int64_t(sample_idx.size() / 2) - 1; }
};
GPTIndexMaps build_gpt_index_maps(std::span<const int32_t> sizes, int64_t doc_begin,
                                  int64_t doc_end, int64_t num_samples, int seq_length,
                                  uint64_t seed);

class GPTDataset : public SampleDataset {
 public:
  // Serves num_samples samples (epochs repeat as needed) from documents [doc_begin, doc_end).
  // One instance per shard and split; a blend of shards asks each for its own num_samples.
  GPTDataset(std::shared_ptr<const IndexedDataset> data, int64_t doc_begin, int64_t doc_end,
             int64_t num_samples, int seq_length, uint64_t seed);
  // The same dataset over index maps built earlier (e.g. loaded from the index cache); they
  // must have been built by build_gpt_index_maps for this data and at least num_samples.
  GPTDataset(std::shared_ptr<const IndexedDataset> data, GPTIndexMaps maps, int64_t num_samples,
             int seq_length);
  int64_t size() const override { return num_samples_; }
  int seq_length() const override { return seq_length_; }
  const GPTIndexMaps& index_maps() const { return maps_; }
  const IndexedDataset& data() const { return *data_; }
  // From now on sample() refuses token ids >= vocab_size with a UserError naming the data
  // (cheap: one compare per token). 0 turns the check off.
  void set_vocab_limit(int64_t vocab_size) { vocab_limit_ = vocab_size; }
  // Sample i: seq_length+1 token ids. tokens = out[0..s), labels = out[1..s].
  void sample(int64_t i, int32_t* out) const override;

 private:
  std::shared_ptr<const IndexedDataset> data_;
  int seq_length_;
  int64_t num_samples_;
  int64_t vocab_limit_ = 0;
  GPTIndexMaps maps_;
};

}  // namespace mds::data
