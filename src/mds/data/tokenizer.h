// The tokenizer interface every tokenizer implements (GPT-2 BPE, SentencePiece, Hugging Face
// tokenizer.json, Null).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mds::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Text -> token ids. Must be safe to call from several threads at once.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int64_t vocab_size() const = 0;  // unpadded
  virtual int32_t eod() const = 0;         // appended by --append-eod
};

// Megatron's --tokenizer-type names. Unknown types or missing files are a UserError.
struct TokenizerOptions {
  std::string type;  // "GPT2BPETokenizer", "Llama2Tokenizer", "HFTokenizer", ...
  std::string vocab_file;
  std::string merge_file;
  std::string tokenizer_model;  // SentencePiece .model or Hugging Face tokenizer.json
  int64_t vocab_size = 0;       // --vocab-size: NullTokenizer only (its ids are < vocab_size)
};
std::unique_ptr<Tokenizer> build_tokenizer(const TokenizerOptions& opts);

}  // namespace mds::data
