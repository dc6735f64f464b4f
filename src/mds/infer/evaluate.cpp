#include "mds/infer/evaluate.h"

#include <algorithm>

#include "mds/core/error.h"

namespace mds::infer {

void VectorTokenStream::read(int64_t offset, int64_t count, int32_t* out) const {
  MDS_ASSERT(offset >= 0 && count >= 0 && offset + count <= size(), "read [{}, +{}) of {}", offset,
             count, size());
  std::copy_n(ids_.data() + offset, count, out);
}

DatasetTokenStream::DatasetTokenStream(const std::string& prefix) : data_(prefix) {
  starts_.resize(size_t(data_.num_sequences() + 1));
  const std::vector<int32_t> sizes = data_.sizes();
  for (size_t i = 0; i < sizes.size(); ++i) starts_[i + 1] = starts_[i] + sizes[i];
}

void DatasetTokenStream::read(int64_t offset, int64_t count, int32_t* out) const {
  MDS_ASSERT(offset >= 0 && count >= 0 && offset + count <= size(), "read [{}, +{}) of {}", offset,
             count, size());
  // The sequence holding `offset`: the last start <= offset.
  int64_t seq =
      int64_t(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin()) - 1;
  while (count > 0) {
    const int64_t at = offset - starts_[size_t(seq)];
    const int64_t n = std::min(count, starts_[size_t(seq) + 1] - offset);
    if (n > 0) data_.read(seq, at, n, out);
    out += n;
    offset += n;
    count -= n;
    ++seq;
  }
}

EvalResult evaluate(model::LlamaModel& model, const TokenStream& stream, int64_t seq_length,
                    int64_t micro_batch) {
  const model::LlamaConfig& c = model.config();
  MDS_ASSERT(model.shard().whole(), "evaluate needs the whole model on one rank");
  MDS_CHECK(seq_length > 0, "--seq-length must be positive (got {})", seq_length);
  MDS_CHECK(seq_length <= c.max_position_embeddings,
            "--seq-length {} exceeds the model's context (max_position_embeddings {})", seq_length,
            c.max_position_embeddings);
  MDS_CHECK(micro_batch > 0, "--micro-batch-size must be positive (got {})", micro_batch);
  const int64_t N = seq_length, W = stream.size() / (N + 1);
  MDS_CHECK(W > 0, "the text has {} tokens, fewer than one window of --seq-length + 1 = {}",
            stream.size(), N + 1);

  EvalResult r;
  r.windows = W;
  r.tokens = W * N;
  std::vector<int32_t> window(size_t(N + 1)), tokens, targets;
  double sum = 0;  // of per-token losses
  for (int64_t w0 = 0; w0 < W; w0 += micro_batch) {
    const int64_t b = std::min(micro_batch, W - w0);
    tokens.resize(size_t(b * N));
    targets.resize(size_t(b * N));
    for (int64_t i = 0; i < b; ++i) {
      const int64_t offset = (w0 + i) * (N + 1);
      stream.read(offset, N + 1, window.data());
      for (int64_t t = 0; t <= N; ++t)
        MDS_CHECK(window[size_t(t)] >= 0 && window[size_t(t)] < c.vocab_size,
                  "token {} of the stream is id {}, outside the model's vocabulary [0, {}): "
                  "was the data tokenized for another model?",
                  offset + t, window[size_t(t)], c.vocab_size);
      std::copy_n(window.begin(), N, tokens.begin() + i * N);
      std::copy_n(window.begin() + 1, N, targets.begin() + i * N);
    }
    sum += model.forward_loss(tokens.data(), targets.data(), b, N) * double(b * N);
  }
  r.loss = sum / double(r.tokens);
  return r;
}

}  // namespace mds::infer
