// Megatron's GPTDataset over one indexed dataset: documents of one split, shuffled per epoch
// with the seed, cut into samples of seq_length+1 tokens that run across document boundaries
// (adjacent samples share one boundary token), served in a shuffled order.
// See megatron/data/gpt_dataset.py (_build_index_mappings) and helpers.cpp (build_sample_idx).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mds/data/indexed_dataset.h"

namespace mds::data {

// --split "969,30,1" -> document ranges [begin, end) for train, valid, test, as Megatron's
// get_train_valid_test_split_ rounds them.
std::array<std::pair<int64_t, int64_t>, 3> split_documents(const std::string& split,
                                                           int64_t num_docs);

class GPTDataset {
 public:
  // Serves num_samples samples (epochs repeat as needed) from documents [doc_begin, doc_end).
  GPTDataset(std::shared_ptr<const IndexedDataset> data, int64_t doc_begin, int64_t doc_end,
             int64_t num_samples, int seq_length, uint64_t seed);
  int64_t size() const { return num_samples_; }
  int seq_length() const { return seq_length_; }
  // Sample i: seq_length+1 token ids. tokens = out[0..s), labels = out[1..s].
  void sample(int64_t i, int32_t* out) const;

 private:
  std::shared_ptr<const IndexedDataset> data_;
  int seq_length_;
  int64_t num_samples_;
  std::vector<int32_t> doc_order_;                 // doc_idx: documents over all epochs
  std::vector<std::array<int64_t, 2>> sample_idx_;  // (position in doc_order_, token offset)
  std::vector<int64_t> shuffle_idx_;
};

}  // namespace mds::data
