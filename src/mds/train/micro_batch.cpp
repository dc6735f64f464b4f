#include "mds/train/micro_batch.h"

namespace mds::train {

void read_micro_batch(const data::SampleDataset& dataset, int64_t first, int64_t b,
                      MicroBatch& mb) {
  const int64_t s = dataset.seq_length();
  mb.b = b;
  mb.s = s;
  mb.tokens.resize(b * s);
  mb.targets.resize(b * s);
  std::vector<int32_t> sample(s + 1);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t index = (first + r) % dataset.size();
    dataset.sample(index, sample.data());
    std::copy(sample.begin(), sample.begin() + s, mb.tokens.begin() + r * s);
    std::copy(sample.begin() + 1, sample.end(), mb.targets.begin() + r * s);
  }
}

}  // namespace mds::train
