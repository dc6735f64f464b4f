// GPTDataset: Megatron's index maps (doc_idx, sample_idx, shuffle_idx) and sample assembly.
#include "mds/data/gpt_dataset.h"

#include <cmath>
#include <cstdlib>

#include "mds/core/error.h"
#include "mds/data/numpy_random.h"

namespace mds::data {

std::array<std::pair<int64_t, int64_t>, 3> split_documents(const std::string& split,
                                                           int64_t num_docs) {
  const char sep = split.find(',') != std::string::npos   ? ','
                   : split.find('/') != std::string::npos ? '/'
                                                          : '\0';
  std::vector<double> w;
  size_t start = 0;
  while (true) {
    const size_t end = sep ? split.find(sep, start) : std::string::npos;
    const std::string part = split.substr(start, end == std::string::npos ? end : end - start);
    char* stop = nullptr;
    const double v = std::strtod(part.c_str(), &stop);
    MDS_CHECK(!part.empty() && stop && *stop == '\0' && std::isfinite(v) && v >= 0,
              "--split '{}': '{}' is not a non-negative number (expected e.g. 969,30,1)", split,
              part);
    w.push_back(v);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  w.resize(3, 0.0);  // missing parts are 0; parts past the third are ignored, as in Megatron
  const double sum = w[0] + w[1] + w[2];
  MDS_CHECK(sum > 0.0, "--split '{}' must have a positive sum", split);
  int64_t idx[4] = {0, 0, 0, 0};
  for (int k = 0; k < 3; ++k)
    idx[k + 1] = idx[k] + int64_t(std::nearbyint(w[k] / sum * double(num_docs)));  // half-even
  const int64_t diff = idx[3] - num_docs;
  for (int k = 1; k < 4; ++k) idx[k] -= diff;
  return {{{idx[0], idx[1]}, {idx[1], idx[2]}, {idx[2], idx[3]}}};
}

namespace {

// _build_doc_idx: the documents tiled num_epochs times, as int32, shuffled in place.
void append_shuffled_epochs(std::vector<int32_t>& doc_idx, int64_t doc_begin, int64_t doc_end,
                            int num_epochs, NumpyRandomState& rng) {
  const size_t first = doc_idx.size();
  for (int e = 0; e < num_epochs; ++e)
    for (int64_t d = doc_begin; d < doc_end; ++d) doc_idx.push_back(int32_t(d));
  rng.shuffle(std::span<int32_t>(doc_idx.data() + first, doc_idx.size() - first));
}

// helpers.cpp build_sample_idx: walk doc_idx, each sample taking seq_length+1 tokens, the
// last token of a sample being the first of the next (hence the -1 on the offset).
std::vector<int64_t> build_sample_idx(std::span<const int32_t> sizes,
                                      const std::vector<int32_t>& doc_idx, int seq_length,
                                      int num_epochs, int64_t tokens_per_epoch) {
  const int64_t num_samples = (num_epochs * tokens_per_epoch - 1) / seq_length;
  std::vector<int64_t> sample_idx(static_cast<size_t>(2 * (num_samples + 1)));
  int64_t doc_idx_index = 0;
  int64_t doc_offset = 0;
  sample_idx[0] = 0;
  sample_idx[1] = 0;
  for (int64_t s = 1; s <= num_samples; ++s) {
    int64_t remaining = int64_t(seq_length) + 1;
    while (remaining != 0) {
      MDS_ASSERT(doc_idx_index < int64_t(doc_idx.size()), "sample_idx ran past doc_idx");
      const int64_t doc_length = sizes[size_t(doc_idx[size_t(doc_idx_index)])] - doc_offset;
      remaining -= doc_length;
      if (remaining <= 0) {
        doc_offset += remaining + doc_length - 1;
        remaining = 0;
      } else {
        ++doc_idx_index;
        doc_offset = 0;
      }
    }
    sample_idx[size_t(2 * s)] = doc_idx_index;
    sample_idx[size_t(2 * s + 1)] = doc_offset;
  }
  return sample_idx;
}

// _build_shuffle_idx: [0, num_samples) shuffled, then [num_samples, total) shuffled apart.
std::vector<int64_t> build_shuffle_idx(int64_t num_samples, int64_t total, NumpyRandomState& rng) {
  std::vector<int64_t> idx(static_cast<size_t>(total));
  for (int64_t k = 0; k < total; ++k) idx[size_t(k)] = k;
  rng.shuffle(std::span<int64_t>(idx.data(), size_t(num_samples)));
  if (num_samples < total)
    rng.shuffle(std::span<int64_t>(idx.data() + num_samples, size_t(total - num_samples)));
  return idx;
}

}  // namespace

GPTIndexMaps build_gpt_index_maps(std::span<const int32_t> sizes, int64_t doc_begin,
                                  int64_t doc_end, int64_t num_samples, int seq_length,
                                  uint64_t seed) {
  MDS_CHECK(seq_length > 0, "--seq-length must be positive, got {}", seq_length);
  MDS_CHECK(num_samples >= 0, "number of samples must be non-negative, got {}", num_samples);
  MDS_CHECK(seed <= 0xffffffffULL, "--seed {} must be in [0, 2^32) (numpy's RandomState range)",
            seed);
  MDS_CHECK(0 <= doc_begin && doc_begin < doc_end && doc_end <= int64_t(sizes.size()),
            "document range [{}, {}) is empty or outside the {} documents of the data", doc_begin,
            doc_end, sizes.size());
  int64_t tokens_per_epoch = 0;
  for (int64_t d = doc_begin; d < doc_end; ++d) tokens_per_epoch += sizes[size_t(d)];
  MDS_CHECK(tokens_per_epoch > 1,
            "documents [{}, {}) hold {} tokens; a sample needs at least 2 (is the data empty?)",
            doc_begin, doc_end, tokens_per_epoch);

  GPTIndexMaps m;
  // _num_epochs: the smallest E with (E * tokens_per_epoch - 1) // seq_length >= num_samples.
  int64_t total_tokens = 0;
  do {
    ++m.num_epochs;
    total_tokens += tokens_per_epoch;
  } while ((total_tokens - 1) / seq_length < num_samples);

  // If the last epoch is needed for less than 80% of its samples, it is shuffled on its own,
  // so the partial epoch does not bias which documents the run sees.
  int64_t from_epochs_minus_one = 0;
  if (m.num_epochs > 1) {
    from_epochs_minus_one = ((m.num_epochs - 1) * tokens_per_epoch - 1) / seq_length;
    const int64_t last_epoch_samples = num_samples - from_epochs_minus_one;
    const int64_t per_epoch = (tokens_per_epoch - 1) / seq_length;
    MDS_ASSERT(last_epoch_samples >= 0 && last_epoch_samples <= per_epoch + 1,
               "last epoch needs {} samples of {}", last_epoch_samples, per_epoch);
    m.separate_last_epoch = last_epoch_samples < int64_t(0.80 * double(per_epoch));
  }

  NumpyRandomState rng(static_cast<uint32_t>(seed));
  m.doc_idx.reserve(size_t(m.num_epochs * (doc_end - doc_begin)));
  if (!m.separate_last_epoch) {
    append_shuffled_epochs(m.doc_idx, doc_begin, doc_end, m.num_epochs, rng);
  } else {
    append_shuffled_epochs(m.doc_idx, doc_begin, doc_end, m.num_epochs - 1, rng);
    append_shuffled_epochs(m.doc_idx, doc_begin, doc_end, 1, rng);
  }
  m.sample_idx = build_sample_idx(sizes, m.doc_idx, seq_length, m.num_epochs, tokens_per_epoch);
  const int64_t total = m.num_built_samples();
  m.shuffle_idx =
      build_shuffle_idx(m.separate_last_epoch ? from_epochs_minus_one : total, total, rng);
  return m;
}

GPTDataset::GPTDataset(std::shared_ptr<const IndexedDataset> data, int64_t doc_begin,
                       int64_t doc_end, int64_t num_samples, int seq_length, uint64_t seed)
    : data_(std::move(data)), seq_length_(seq_length), num_samples_(num_samples) {
  const std::vector<int32_t> sizes = data_->sizes();
  try {
    maps_ = build_gpt_index_maps(sizes, doc_begin, doc_end, num_samples, seq_length, seed);
  } catch (const UserError& e) {
    throw UserError(strfmt("{}: {}", data_->prefix(), e.what()));
  }
}

GPTDataset::GPTDataset(std::shared_ptr<const IndexedDataset> data, GPTIndexMaps maps,
                       int64_t num_samples, int seq_length)
    : data_(std::move(data)),
      seq_length_(seq_length),
      num_samples_(num_samples),
      maps_(std::move(maps)) {
  MDS_ASSERT(maps_.num_built_samples() >= num_samples &&
                 int64_t(maps_.shuffle_idx.size()) == maps_.num_built_samples(),
             "{}: index maps hold {} samples, {} wanted", data_->prefix(),
             maps_.num_built_samples(), num_samples);
}

void GPTDataset::sample(int64_t i, int32_t* out) const {
  MDS_ASSERT(i >= 0 && i < int64_t(maps_.shuffle_idx.size()), "sample {} out of range [0, {})", i,
             maps_.shuffle_idx.size());
  const int64_t j = maps_.shuffle_idx[size_t(i)];
  const int64_t doc_f = maps_.sample_idx[size_t(2 * j)],
                off_f = maps_.sample_idx[size_t(2 * j + 1)];
  const int64_t doc_l = maps_.sample_idx[size_t(2 * j + 2)];
  const int64_t off_l = maps_.sample_idx[size_t(2 * j + 3)];
  auto doc = [&](int64_t k) { return int64_t(maps_.doc_idx[size_t(k)]); };
  int64_t n = 0;
  if (doc_f == doc_l) {
    data_->read(doc(doc_f), off_f, off_l - off_f + 1, out);
    n = off_l - off_f + 1;
  } else {
    const int64_t first = data_->size(doc(doc_f)) - off_f;
    data_->read(doc(doc_f), off_f, first, out);
    n = first;
    for (int64_t k = doc_f + 1; k < doc_l; ++k) {
      const int64_t len = data_->size(doc(k));
      data_->read(doc(k), 0, len, out + n);
      n += len;
    }
    data_->read(doc(doc_l), 0, off_l + 1, out + n);
    n += off_l + 1;
  }
  MDS_ASSERT(n == int64_t(seq_length_) + 1, "sample {} has {} tokens, expected {}", i, n,
             seq_length_ + 1);
  if (vocab_limit_ > 0)
    for (int64_t k = 0; k < n; ++k)
      MDS_CHECK(out[k] >= 0 && out[k] < vocab_limit_,
                "{}: token id {} in sample {} is outside the model's vocabulary of {}; the data "
                "was tokenized with a different tokenizer (re-run mds preprocess with the model's "
                "tokenizer)",
                data_->prefix(), out[k], i, vocab_limit_);
}

}  // namespace mds::data
