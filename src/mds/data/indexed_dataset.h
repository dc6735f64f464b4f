// Megatron's memory-mapped indexed dataset: PREFIX.bin (raw tokens) + PREFIX.idx (index).
//
// .idx, little-endian, no padding:
//   magic "MMIDIDX\0\0" (9 B) | u64 version = 1 | u8 dtype code | u64 n_seq | u64 n_doc
//   | int32 sizes[n_seq] | int64 pointers[n_seq] (byte offsets into .bin) | int64 doc_idx[n_doc]
// dtype codes: 1 u8, 2 i8, 3 i16, 4 i32, 5 i64, 6 f64, 7 f32, 8 u16.
// See megatron/core/datasets/indexed_dataset.py in Megatron-LM.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace mds::data {

enum class TokenDType : uint8_t { u8 = 1, i8 = 2, i16 = 3, i32 = 4, i64 = 5, f64 = 6, f32 = 7, u16 = 8 };
size_t dtype_size(TokenDType t);
// Megatron's choice: uint16 when the vocabulary fits (< 65500), else int32.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

// Streams documents to PREFIX.bin; writes PREFIX.idx on finalize().
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(const std::string& prefix, TokenDType dtype);
  ~IndexedDatasetWriter();
  // One document = one sequence (no sentence splitting). An empty document adds no
  // sequence, only a repeated document boundary, exactly as Megatron does.
  void add_document(std::span<const int32_t> tokens);
  void finalize();

 private:
  std::string prefix_;
  TokenDType dtype_;
  std::FILE* bin_ = nullptr;
  std::vector<int32_t> sizes_;
  std::vector<int64_t> doc_idx_{0};
  bool finalized_ = false;
};

// Read-only view of PREFIX.bin/.idx, both memory-mapped. Validates header and sizes on open
// (wrong magic, truncated files, pointers past the end are a UserError naming the file).
class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);
  ~IndexedDataset();
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  const std::string& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return n_seq_; }
  std::span<const int32_t> sizes() const { return {sizes_, size_t(n_seq_)}; }
  std::span<const int64_t> pointers() const { return {pointers_, size_t(n_seq_)}; }
  std::span<const int64_t> doc_idx() const { return {doc_idx_, size_t(n_doc_)}; }
  int64_t num_tokens() const;
  // Copies tokens [offset, offset+count) of sequence i into out (converted to int32).
  void read(int64_t i, int64_t offset, int64_t count, int32_t* out) const;

 private:
  std::string prefix_;
  TokenDType dtype_{};
  int64_t n_seq_ = 0, n_doc_ = 0;
  const int32_t* sizes_ = nullptr;
  const int64_t* pointers_ = nullptr;
  const int64_t* doc_idx_ = nullptr;
  const uint8_t* bin_ = nullptr;
  size_t idx_bytes_ = 0, bin_bytes_ = 0;
  void* idx_map_ = nullptr;
  void* bin_map_ = nullptr;
};

}  // namespace mds::data
