// build_tokenizer: Megatron's --tokenizer-type names to implementations.
#include "mds/data/tokenizer.h"

#include "mds/core/error.h"

namespace mds::data {

std::unique_ptr<Tokenizer> build_tokenizer(const TokenizerOptions& opts) {
  MDS_FAIL("unknown --tokenizer-type '{}' (supported: GPT2BPETokenizer)", opts.type);
}

}  // namespace mds::data
