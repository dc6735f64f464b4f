// Megatron's NullTokenizer (--tokenizer-type NullTokenizer --vocab-size N): the text already is
// token ids, written as decimal integers separated by whitespace ("5 17 3"). Used for data that
// was tokenized elsewhere and for synthetic benchmarks.
//
// As Megatron's _NullTokenizer: eod() = N (one past the given ids), vocab_size() = N + 1.
// An id outside [0, N] or a word that is not an integer is a UserError naming it.
#pragma once

#include "mds/data/tokenizer.h"

namespace mds::data {

class NullTokenizer final : public Tokenizer {
 public:
  explicit NullTokenizer(int64_t vocab_size);  // the --vocab-size flag, > 0

  std::vector<int32_t> encode(std::string_view text) const override;
  std::string decode(const std::vector<int32_t>& ids) const override;  // "5 17 3"
  int64_t vocab_size() const override { return n_ + 1; }
  int32_t eod() const override { return int32_t(n_); }

 private:
  int64_t n_;
};

}  // namespace mds::data
