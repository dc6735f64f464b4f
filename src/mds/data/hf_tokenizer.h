// HFTokenizer (--tokenizer-type HFTokenizer --tokenizer-model DIR or DIR/tokenizer.json): a
// Hugging Face tokenizer.json with a BPE model, run natively. Supported, as the files of Llama 3,
// GPT-2-style models and Llama-2/Mistral-style SentencePiece BPE (HF export) use them:
//
//   added tokens  every added_tokens entry found in the raw text becomes its id (leftmost, then
//                 longest match), before anything else; the text between them is encoded alone.
//                 Those marked "normalized" (GPT-NeoX's runs of spaces) are found instead, by
//                 their normalized content, in each such stretch after the normalizer has run.
//   normalizer    null, Sequence, Prepend, Replace (String pattern), NFC, NFD, NFKC, NFKD
//                 (ICU, see unicode_normalize.h; as Qwen2/3, GPT-NeoX and Pythia files use)
//   pre_tokenizer null, Sequence, Split (Regex, behavior Isolated), ByteLevel (add_prefix_space,
//                 use_regex: the GPT-2 pattern), Metaspace (prepend_scheme; split false)
//   model         BPE: merges as "a b" or ["a", "b"]; ignore_merges; byte_fallback (<0xXX>);
//                 unk_token and fuse_unk. Merges apply lowest rank first, leftmost on ties.
//   post_processor null, ByteLevel, TemplateProcessing (its "single" template: e.g. BOS), Sequence
//
// Anything else (Precompiled/Lowercase normalizers, Metaspace split, WordPiece/Unigram models,
// lstrip/rstrip added tokens, ...) is a UserError naming the file and the unsupported part,
// never a silent difference. Regexes run on PCRE2 (UTF, UCP).
//
// Megatron-DeepSpeed's _HFTokenizer semantics: encode() = HF encode(text) with its default of
// adding the post-processor's special tokens; eod() = the eos token of tokenizer_config.json beside
// tokenizer.json (else the first of </s>, <|end_of_text|>, <|endoftext|>, <eos> that exists);
// vocab_size() = 1 + the largest id of the vocabulary and added tokens (Megatron-DeepSpeed reports
// HF's tokenizer.vocab_size, which leaves the added tokens out, e.g. 128000 for Llama 3, fewer
// than the ids it writes; it also adds a [PAD]-style token when the tokenizer has none, which
// is not done here).
// Reference: @huggingface/tokenizers (npm) via tests/reference/hf_encode.mjs.
// encode() is safe to call from many threads at once.
#pragma once

#include <memory>
#include <string>

#include "mds/data/tokenizer.h"

namespace mds::data {

class HFTokenizer final : public Tokenizer {
 public:
  // path: tokenizer.json or the directory holding it. Throws UserError naming the file.
  explicit HFTokenizer(const std::string& path);
  ~HFTokenizer() override;

  std::vector<int32_t> encode(std::string_view text) const override;
  // Added tokens are written as their content; byte-level tokens become their bytes, and
  // SentencePiece-style ones have U+2581 turned into spaces and <0xXX> into bytes (then the
  // decoder's Strip). Returns valid UTF-8. An id outside the vocabulary is a UserError.
  std::string decode(const std::vector<int32_t>& ids) const override;
  int64_t vocab_size() const override;
  int32_t eod() const override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mds::data
