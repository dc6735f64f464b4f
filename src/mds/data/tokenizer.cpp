// build_tokenizer: Megatron's --tokenizer-type names to implementations.
// To add a tokenizer, add one row to kTokenizers (its name, the flags it needs, its constructor).
#include "mds/data/tokenizer.h"

#include <string>

#include "mds/core/error.h"
#include "mds/data/gpt2_bpe.h"
#include "mds/data/hf_tokenizer.h"
#include "mds/data/null_tokenizer.h"
#include "mds/data/sentencepiece_tokenizer.h"

namespace mds::data {
namespace {

struct TokenizerType {
  const char* name;
  std::unique_ptr<Tokenizer> (*build)(const TokenizerOptions&);
};

// Each builder checks the flags its tokenizer needs, so the error names the missing flag.
void require(const std::string& value, const char* flag, const TokenizerOptions& opts) {
  MDS_CHECK(!value.empty(), "--tokenizer-type {} requires {}", opts.type, flag);
}

const TokenizerType kTokenizers[] = {
    {"GPT2BPETokenizer",
     [](const TokenizerOptions& o) -> std::unique_ptr<Tokenizer> {
       require(o.vocab_file, "--vocab-file (GPT-2's vocab.json, e.g. gpt2-vocab.json)", o);
       require(o.merge_file, "--merge-file (GPT-2's merges.txt, e.g. gpt2-merges.txt)", o);
       return std::make_unique<GPT2BPETokenizer>(o.vocab_file, o.merge_file);
     }},
    {"SentencePieceTokenizer",
     [](const TokenizerOptions& o) -> std::unique_ptr<Tokenizer> {
       require(o.tokenizer_model, "--tokenizer-model (a SentencePiece .model file)", o);
       return std::make_unique<SentencePieceTokenizer>(o.tokenizer_model,
                                                       SentencePieceFlavor::megatron);
     }},
    {"Llama2Tokenizer",
     [](const TokenizerOptions& o) -> std::unique_ptr<Tokenizer> {
       require(o.tokenizer_model, "--tokenizer-model (Llama 2's tokenizer.model)", o);
       return std::make_unique<SentencePieceTokenizer>(o.tokenizer_model,
                                                       SentencePieceFlavor::llama2);
     }},
    {"HFTokenizer",
     [](const TokenizerOptions& o) -> std::unique_ptr<Tokenizer> {
       require(o.tokenizer_model,
               "--tokenizer-model (a Hugging Face tokenizer.json, or the directory holding it)", o);
       return std::make_unique<HFTokenizer>(o.tokenizer_model);
     }},
    {"NullTokenizer",
     [](const TokenizerOptions& o) -> std::unique_ptr<Tokenizer> {
       MDS_CHECK(o.vocab_size > 0, "--tokenizer-type NullTokenizer requires --vocab-size N");
       return std::make_unique<NullTokenizer>(o.vocab_size);
     }},
};

}  // namespace

std::unique_ptr<Tokenizer> build_tokenizer(const TokenizerOptions& opts) {
  std::string supported;
  for (const TokenizerType& t : kTokenizers) {
    if (opts.type == t.name) return t.build(opts);
    supported += supported.empty() ? t.name : std::string(", ") + t.name;
  }
  MDS_FAIL("unknown --tokenizer-type '{}' (supported: {})", opts.type, supported);
}

}  // namespace mds::data
