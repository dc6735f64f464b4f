// CorpusDataset (concatenate + shuffle) and BlendedDataset (greedy interleave by weight).
#include "mds/data/blended_dataset.h"

#include <algorithm>
#include <cmath>

#include "mds/core/error.h"
#include "mds/data/numpy_random.h"

namespace mds::data {

CorpusDataset::CorpusDataset(std::vector<std::unique_ptr<SampleDataset>> parts, uint64_t seed)
    : parts_(std::move(parts)) {
  MDS_ASSERT(!parts_.empty(), "a corpus needs at least one shard");
  MDS_CHECK(seed <= 0xffffffffULL, "--seed {} must be in [0, 2^32) (numpy's RandomState range)",
            seed);
  offsets_.push_back(0);
  for (const auto& p : parts_) {
    MDS_ASSERT(p->seq_length() == parts_.front()->seq_length(), "shards differ in seq_length");
    offsets_.push_back(offsets_.back() + p->size());
  }
  // A concatenated index is located by binary search over offsets_ rather than Megatron's two
  // per-sample arrays: the same mapping in 8 bytes per shard instead of 16 per sample.
  NumpyRandomState rng(static_cast<uint32_t>(seed));
  shuffle_ = rng.permutation<int64_t>(size_t(size()));
}

void CorpusDataset::sample(int64_t i, int32_t* out) const {
  MDS_ASSERT(i >= 0 && i < size(), "corpus sample {} out of range [0, {})", i, size());
  const int64_t k = shuffle_[size_t(i)];
  const auto part =
      size_t(std::upper_bound(offsets_.begin(), offsets_.end(), k) - offsets_.begin()) - 1;
  parts_[part]->sample(k - offsets_[part], out);
}

BlendingIndices build_blending_indices(std::span<const double> weights, int64_t size) {
  double sum = 0;
  for (double w : weights) {
    MDS_CHECK(std::isfinite(w) && w >= 0, "blend weight {} must be a non-negative number", w);
    sum += w;
  }
  MDS_CHECK(!weights.empty() && sum > 0, "blend weights must have a positive sum");
  std::vector<double> w(weights.begin(), weights.end());
  for (double& x : w) x /= sum;
  std::vector<int64_t> count(w.size(), 0);
  BlendingIndices out;
  out.dataset.resize(size_t(size));
  out.sample.resize(size_t(size));
  for (int64_t t = 0; t < size; ++t) {
    const double steps = std::max(double(t), 1.0);
    size_t best = 0;
    double best_error = w[0] * steps - double(count[0]);
    for (size_t d = 1; d < w.size(); ++d) {
      const double error = w[d] * steps - double(count[d]);
      if (error > best_error) {  // strict: ties go to the lowest index, as in helpers.cpp
        best_error = error;
        best = d;
      }
    }
    out.dataset[size_t(t)] = int32_t(best);
    out.sample[size_t(t)] = count[best]++;
  }
  return out;
}

BlendedDataset::BlendedDataset(std::vector<std::unique_ptr<SampleDataset>> parts,
                               std::vector<double> weights, int64_t size)
    : parts_(std::move(parts)) {
  MDS_ASSERT(!parts_.empty() && parts_.size() == weights.size(), "{} parts, {} weights",
             parts_.size(), weights.size());
  for (const auto& p : parts_)
    MDS_ASSERT(p->seq_length() == parts_.front()->seq_length() && p->size() > 0,
               "blended parts must be non-empty with one seq_length");
  index_ = build_blending_indices(weights, size);
}

void BlendedDataset::sample(int64_t i, int32_t* out) const {
  MDS_ASSERT(i >= 0 && i < size(), "blended sample {} out of range [0, {})", i, size());
  const SampleDataset& part = *parts_[size_t(index_.dataset[size_t(i)])];
  part.sample(index_.sample[size_t(i)] % part.size(), out);
}

}  // namespace mds::data
