// GPT-2 byte-level BPE (Megatron's --tokenizer-type GPT2BPETokenizer), from gpt2-vocab.json and
// gpt2-merges.txt. Encodes as OpenAI's encoder.py / Megatron's gpt2_tokenization.py do:
//
//   text -> pre-tokens by the GPT-2 regex
//             's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//        -> each pre-token's UTF-8 bytes, one symbol per byte (bytes_to_unicode)
//        -> BPE: repeatedly take the adjacent pair of lowest merge rank and merge all of its
//           occurrences left to right, until no adjacent pair has a rank
//        -> vocabulary ids.
//
// Defined details (checked against the npm package gpt-3-encoder by tests/tokenizer_test.cpp):
//  - \s is JavaScript's whitespace set: \t \n \v \f \r, U+0020, U+00A0, U+1680, U+2000-U+200A,
//    U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF (not U+0085, U+180E, \x1c-\x1f). Python's
//    `regex` (Megatron) differs on such rare characters (it has U+0085, not U+FEFF).
//    \p{L} and \p{N} come from PCRE2's Unicode tables (PCRE2 10.42: Unicode 14). Letters and digits
//    added since (node 20 knows Unicode 17: ~14k letters, mostly CJK extensions, in 56 ranges, and
//    133 digits) count as "other" here, so text using them may split differently from node.
//  - Invalid UTF-8 never fails: each maximal invalid subpart becomes U+FFFD (the WHATWG/Unicode
//    practice, which is also what node, Python's errors='replace' and decode() do), so
//    decode(encode(x)) == x for valid UTF-8 and == x-with-replacements otherwise.
//  - "<|endoftext|>" in the text is ordinary text (as in Megatron); eod() is its id (50256).
//  - Merge ranks are keyed by the pair of symbols, as in GPT-2. (gpt-3-encoder keys them by the
//    string "first,second", which gives 14 pairs around commas, e.g. `",` + `"`, a rank they do
//    not have in GPT-2; no input we tried, including all of them in punctuation contexts, encodes
//    differently.)
//
// encode() is safe to call from many threads at once; a bounded, sharded word cache is shared.
#pragma once

#include <memory>
#include <string>

#include "mds/data/tokenizer.h"

namespace mds::data {

class GPT2BPETokenizer final : public Tokenizer {
 public:
  // Throws UserError naming the file and its flag (--vocab-file, --merge-file) when a file is
  // missing or malformed.
  GPT2BPETokenizer(const std::string& vocab_file, const std::string& merge_file);
  ~GPT2BPETokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  // Ids -> bytes, returned as valid UTF-8 (a byte sequence cut mid-character becomes U+FFFD).
  // An id outside [0, vocab_size()) is a UserError.
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  int32_t eod() const override;

  // The raw bytes of one token (no UTF-8 repair), e.g. for streaming generation.
  const std::string& token_bytes(int32_t id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Replaces each maximal invalid subpart of UTF-8 by U+FFFD (Unicode 15 §3.9, "U+FFFD substitution
// of maximal subparts"; what WHATWG's decoder does). Returns the input unchanged when it is valid.
std::string repair_utf8(std::string_view text);

}  // namespace mds::data
