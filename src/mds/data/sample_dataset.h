// The one thing training needs from a dataset: a fixed number of samples of seq_length+1
// token ids each. Implemented by GPTDataset (one shard, one split), CorpusDataset (the shards
// of one corpus) and BlendedDataset (corpora interleaved by weight), so the trainer and the
// micro-batch reader do not care whether the data is one file or two thousand.
#pragma once

#include <cstdint>

namespace mds::data {

class SampleDataset {
 public:
  virtual ~SampleDataset() = default;
  virtual int64_t size() const = 0;
  virtual int seq_length() const = 0;
  // Sample i in [0, size()): seq_length+1 ids into out. tokens = out[0..s), labels = out[1..s].
  virtual void sample(int64_t i, int32_t* out) const = 0;
};

}  // namespace mds::data
