// A trained model opened for inference (mds generate, mds eval): --load resolved as mds train
// resolves it (ckpt::resolve_load_dir: a save folder with latest_checkpointed_iteration.txt, or
// a plain Hugging Face folder), its config.json turned into the model's shape, and the
// tokenizer that goes with it.
//
// The tokenizer, first match wins:
//   1. the tokenizer flags given (--tokenizer-type and its files, as mds train takes them);
//   2. a tokenizer.json (HFTokenizer) or else tokenizer.model (Llama2Tokenizer) in the
//      checkpoint folder, or in the --load folder above it;
//   3. the tokenizer flags of the `mds train` run that saved the checkpoint (its command line
//      in mds_state.json), when their files still exist;
//   otherwise none: a UserError where one is needed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mds/ckpt/hf_checkpoint.h"
#include "mds/data/tokenizer.h"
#include "mds/model/config.h"

namespace mds::infer {

struct CheckpointModel {
  std::string load;  // --load as given
  std::string dir;   // the folder holding config.json and the weights
  ckpt::HfConfig hf;
  // The shape from config.json; vocab_size is the checkpoint's (the rows of embed_tokens),
  // seq_length = max_position_embeddings.
  model::LlamaConfig config;
};

// Resolves --load and reads config.json (a UserError when it is missing or not a Llama).
CheckpointModel open_checkpoint(const std::string& load);

// The weights, laid out by model::ParamTable(cm.config).
std::vector<float> load_weights(const CheckpointModel& cm);

struct ResolvedTokenizer {
  std::unique_ptr<data::Tokenizer> tokenizer;  // null when none was found
  std::string source;                          // where it came from, for the log
};
ResolvedTokenizer checkpoint_tokenizer(const CheckpointModel& cm,
                                       const data::TokenizerOptions& flags);

// The token that ends generation: config.json's eos_token_id, else the tokenizer's EOD.
std::optional<int32_t> stop_token(const CheckpointModel& cm, const data::Tokenizer* tokenizer);

}  // namespace mds::infer
