// SentencePiece tokenizers from a .model file (--tokenizer-model), through libsentencepiece, with
// Megatron-DeepSpeed's two wrappers (megatron/tokenizer/tokenizer.py):
//
//  - Llama2Tokenizer (_Llama2Tokenizer): ids = [bos] + sp.encode(text); eod() = the model's eos;
//    vocab_size() = the model's piece count. Both bos and eos must exist in the model.
//  - SentencePieceTokenizer (_SentencePieceTokenizer): the model's pieces plus Megatron's special
//    tokens <CLS> <SEP> <EOD> <MASK>, then the model's pad/bos/eos pieces (<PAD>/<BOS>/<EOS> when
//    the model has none), each appended after the model's pieces unless the model already has it.
//    A special token written in the text becomes its id (the text is cut at the earliest one; on a
//    tie the first in that order wins), the rest goes through sp.encode without bos/eos.
//    eod() = the id of <EOD>; vocab_size() counts the appended tokens.
//
// Reference: Debian's python3-sentencepiece on the same .model with Megatron's wrapper logic
// (tests/reference/sentencepiece_encode.py). encode() is safe from many threads at once.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mds/data/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace mds::data {

enum class SentencePieceFlavor { megatron, llama2 };

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // Throws UserError naming the file (--tokenizer-model) when it is missing or not a model.
  SentencePieceTokenizer(const std::string& model_file, SentencePieceFlavor flavor);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  // As Megatron's detokenize: pieces decoded by SentencePiece; for the megatron flavor a special
  // token is written as " <TOKEN> " between the decoded runs. An id out of range is a UserError.
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  int32_t eod() const override { return eod_; }
  int32_t bos() const { return bos_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  SentencePieceFlavor flavor_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // megatron flavor, in Megatron's order
  int64_t vocab_size_ = 0;
  int32_t bos_ = -1, eod_ = -1;

  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

}  // namespace mds::data
