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
#include <mutex>
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

// A whole file mapped read-only on the first data() call, safe to call from several threads at
// once (std::call_once). Its size and modification time were taken when the dataset was opened;
// the mapping checks them again, so a shard rewritten under a running job is an error rather
// than tokens read through a stale index.
class LazyFileMap {
 public:
  LazyFileMap() = default;
  ~LazyFileMap();
  LazyFileMap(const LazyFileMap&) = delete;
  LazyFileMap& operator=(const LazyFileMap&) = delete;

  void reset(std::string path, size_t bytes, int64_t mtime_ns);  // before the first data()
  const uint8_t* data() const;                                   // nullptr for an empty file
  size_t bytes() const { return bytes_; }
  int64_t mtime_ns() const { return mtime_ns_; }

 private:
  std::string path_;
  size_t bytes_ = 0;
  int64_t mtime_ns_ = 0;
  mutable std::once_flag once_;
  mutable void* map_ = nullptr;
};

// Read-only view of PREFIX.bin/.idx. Opening validates both files but maps neither: it reads
// the .idx header and the last entries of its arrays and the .bin's size (missing file, wrong
// magic, bad version/dtype, counts that disagree with either file's size: a UserError naming
// the file), so a bad shard in a list of thousands fails at startup, and the open costs a few
// syscalls and no memory. The .idx is mapped on the first size/pointer/doc_idx access, the .bin
// on the first token read; a blend maps only the shards its samples touch.
class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);
  IndexedDataset(const IndexedDataset&) = delete;
  IndexedDataset& operator=(const IndexedDataset&) = delete;

  const std::string& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return n_seq_; }
  int64_t num_doc_idx() const { return n_doc_; }  // document boundaries (documents + 1)
  int32_t size(int64_t i) const;                  // tokens in sequence i
  int64_t pointer(int64_t i) const;               // byte offset of sequence i in .bin
  int64_t doc_idx(int64_t i) const;               // i-th document boundary (a sequence index)
  // All sizes, copied (aligned), read from the .idx without mapping it: what building the index
  // maps needs.
  std::vector<int32_t> sizes() const;
  // Tokens up to the end of the last sequence (no mapping needed). Megatron's builder, mds
  // preprocess and --merge write the pointers as the exclusive prefix sum of the sizes, so this
  // is the sum of the sizes, known from the open alone: the startup table costs nothing per shard.
  int64_t num_tokens() const { return n_tokens_; }
  // Copies tokens [offset, offset+count) of sequence i into out (converted to int32).
  void read(int64_t i, int64_t offset, int64_t count, int32_t* out) const;
  // Largest token id in the whole .bin (-1 if empty): one pass over the tokens, so training
  // can refuse data tokenized for a larger vocabulary before it indexes out of the embedding.
  int64_t max_token_id() const;

 private:
  std::string prefix_;
  TokenDType dtype_{};
  int64_t n_seq_ = 0, n_doc_ = 0, n_tokens_ = 0;
  LazyFileMap idx_, bin_;
};

}  // namespace mds::data
