// Megatron's memory-mapped indexed dataset: PREFIX.bin (raw tokens) + PREFIX.idx (index),
// byte-compatible with megatron/core/datasets/indexed_dataset.py (MMIDIDX) in Megatron-LM.
//
// .idx, little-endian, no padding:
//   magic "MMIDIDX\0\0" (9 B) | u64 version = 1 | u8 dtype code | u64 n_seq | u64 n_doc
//   | int32 sizes[n_seq] | int64 pointers[n_seq] (byte offsets into .bin) | int64 doc_idx[n_doc]
// dtype codes: 1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16.
// The arrays start at byte 34, so they are not aligned: they are read through accessors
// (memcpy loads), never through typed pointers into the mapping.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace mds::data {

enum class TokenDType : uint8_t {
  u8 = 1,
  i8 = 2,
  i16 = 3,
  i32 = 4,
  i64 = 5,
  f64 = 6,
  f32 = 7,
  u16 = 8
};
size_t dtype_size(TokenDType t);
// Megatron's DType.optimal_dtype: uint16 when the vocabulary fits (< 65500), else int32.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

// Streams documents to PREFIX.bin; writes PREFIX.idx on finalize(). Both are written under
// temporary names and renamed into place by finalize(), so a crash (or a writer destroyed
// without finalize) never leaves a half-written pair behind.
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(const std::string& prefix, TokenDType dtype);
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // One document = one sequence (no sentence splitting). An empty document adds no
  // sequence, only a repeated document boundary, exactly as Megatron-LM does.
  void add_document(std::span<const int32_t> tokens);
  // A document of several sequences (Megatron's add_document(tokens, lengths)): the
  // lengths must sum to tokens.size(); an empty list adds a repeated boundary as above.
  void add_document(std::span<const int32_t> tokens, std::span<const int32_t> lengths);
  void finalize();

 private:
  std::string prefix_, bin_tmp_, idx_tmp_;
  TokenDType dtype_;
  std::FILE* bin_ = nullptr;
  std::vector<uint8_t> buf_;  // tokens of one document converted to dtype_
  std::vector<int32_t> sizes_;
  std::vector<int64_t> doc_idx_{0};
  bool finalized_ = false;
};

// Read-only view of PREFIX.bin/.idx, both memory-mapped. Validates header and sizes on open
// (missing file, wrong magic, bad version/dtype, truncated files: a UserError naming the file).
class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  const std::string& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return n_seq_; }
  int64_t num_doc_idx() const { return n_doc_; }  // document boundaries (documents + 1)
  int32_t size(int64_t i) const;                  // tokens in sequence i
  int64_t pointer(int64_t i) const;               // byte offset of sequence i in .bin
  int64_t doc_idx(int64_t i) const;               // i-th document boundary (a sequence index)
  std::vector<int32_t> sizes() const;             // all sizes, copied (aligned)
  int64_t num_tokens() const;
  // Copies tokens [offset, offset+count) of sequence i into out (converted to int32).
  void read(int64_t i, int64_t offset, int64_t count, int32_t* out) const;
  // Largest token id in the whole .bin (-1 if empty): one pass over the tokens, so training
  // can refuse data tokenized for a larger vocabulary before it indexes out of the embedding.
  int64_t max_token_id() const;

 private:
  std::string prefix_;
  TokenDType dtype_{};
  int64_t n_seq_ = 0, n_doc_ = 0;
  const uint8_t* sizes_ = nullptr;     // int32[n_seq], unaligned
  const uint8_t* pointers_ = nullptr;  // int64[n_seq], unaligned
  const uint8_t* doc_idx_ = nullptr;   // int64[n_doc], unaligned
  const uint8_t* bin_ = nullptr;
  size_t idx_bytes_ = 0, bin_bytes_ = 0;
  void* idx_map_ = nullptr;
  void* bin_map_ = nullptr;
};

}  // namespace mds::data
