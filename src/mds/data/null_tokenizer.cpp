// NullTokenizer: whitespace-separated decimal ids in, the same ids out.
#include "mds/data/null_tokenizer.h"

#include <charconv>
#include <string>

#include "mds/core/error.h"

namespace mds::data {

NullTokenizer::NullTokenizer(int64_t vocab_size) : n_(vocab_size) {
  MDS_CHECK(vocab_size > 0 && vocab_size < (int64_t(1) << 31) - 1,
            "--tokenizer-type NullTokenizer needs --vocab-size N with 0 < N < 2^31-1 (got {})",
            vocab_size);
}

std::vector<int32_t> NullTokenizer::encode(std::string_view text) const {
  // Whitespace as Python's str.split() knows it in ASCII; Megatron splits on ' ' and int() strips
  // the rest, so "1  2" fails there but is accepted here.
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  std::vector<int32_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    if (space(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !space(text[j])) ++j;
    const std::string_view word = text.substr(i, j - i);
    int64_t id = -1;
    const char* end = word.data() + word.size();
    auto [ptr, ec] = std::from_chars(word.data() + (word[0] == '+'), end, id);
    MDS_CHECK(ec == std::errc() && ptr == end,
              "NullTokenizer: '{}' is not an integer token id (the text must be ids separated "
              "by whitespace)",
              std::string(word.substr(0, 40)));
    MDS_CHECK(id >= 0 && id <= n_,
              "NullTokenizer: token id {} is outside [0, {}] (--vocab-size {}; {} is eod)", id, n_,
              n_, n_);
    ids.push_back(int32_t(id));
    i = j;
  }
  return ids;
}

std::string NullTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  for (int32_t id : ids) {
    MDS_CHECK(id >= 0 && id <= n_, "NullTokenizer: token id {} is outside [0, {}]", id, n_);
    if (!out.empty()) out += ' ';
    out += std::to_string(id);
  }
  return out;
}

}  // namespace mds::data
