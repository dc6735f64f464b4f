// Perplexity of a model on a token stream, defined so that any implementation gets the same
// numbers: the stream is cut into W = floor(T_stream / (N+1)) consecutive, non-overlapping
// windows of N+1 tokens (the remainder is dropped); each window is one sequence from position
// 0 whose first N tokens predict its last N; the loss is the mean next-token cross entropy
// (natural log) over all W x N predictions, ppl = exp(loss). No BOS or EOD is added anywhere.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mds/data/indexed_dataset.h"
#include "mds/model/llama.h"

namespace mds::infer {

// Token ids read in order.
class TokenStream {
 public:
  virtual ~TokenStream() = default;
  virtual int64_t size() const = 0;
  virtual void read(int64_t offset, int64_t count, int32_t* out) const = 0;  // [offset, +count)
};

// Ids held in memory (a tokenized text).
class VectorTokenStream final : public TokenStream {
 public:
  explicit VectorTokenStream(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
  int64_t size() const override { return int64_t(ids_.size()); }
  void read(int64_t offset, int64_t count, int32_t* out) const override;

 private:
  std::vector<int32_t> ids_;
};

// A Megatron dataset's tokens: every sequence of PREFIX.bin in index order, concatenated
// (documents keep the EOD their preprocessing appended). Read straight from the mapping.
class DatasetTokenStream final : public TokenStream {
 public:
  explicit DatasetTokenStream(const std::string& prefix);
  int64_t size() const override { return starts_.back(); }
  void read(int64_t offset, int64_t count, int32_t* out) const override;

 private:
  data::IndexedDataset data_;
  std::vector<int64_t> starts_;  // [sequences + 1]: offset of each sequence in the stream
};

struct EvalResult {
  int64_t windows = 0;
  int64_t tokens = 0;  // predictions: windows x N
  double loss = 0;     // mean cross entropy, nats
};

// Runs the windows through model.forward_loss, micro_batch windows at a time (the last batch
// may be smaller), and weights each batch's mean by its tokens. The model must hold the whole
// network (one rank). seq_length N must not exceed max_position_embeddings, the stream must
// hold N+1 tokens and its ids must be < vocab_size: otherwise a UserError naming the flag.
EvalResult evaluate(model::LlamaModel& model, const TokenStream& stream, int64_t seq_length,
                    int64_t micro_batch);

}  // namespace mds::infer
