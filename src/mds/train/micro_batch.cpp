#include "mds/train/micro_batch.h"

#include "mds/core/error.h"

namespace mds::train {

void read_micro_batch(const data::GPTDataset& dataset, int64_t first, int64_t b,
                      int64_t vocab_size, MicroBatch& mb) {
  const int64_t s = dataset.seq_length();
  mb.b = b;
  mb.s = s;
  mb.tokens.resize(b * s);
  mb.targets.resize(b * s);
  std::vector<int32_t> sample(s + 1);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t index = (first + r) % dataset.size();
    dataset.sample(index, sample.data());
    for (int64_t t = 0; t <= s; ++t)
      MDS_CHECK(sample[t] >= 0 && sample[t] < vocab_size,
                "token id {} in sample {} is outside the tokenizer's vocabulary (size {}): the "
                "data was tokenized with a different tokenizer; re-run mds preprocess with the "
                "--tokenizer-type/--vocab-file used for training",
                sample[t], index, vocab_size);
    std::copy(sample.begin(), sample.begin() + s, mb.tokens.begin() + r * s);
    std::copy(sample.begin() + 1, sample.end(), mb.targets.begin() + r * s);
  }
}

}  // namespace mds::train
