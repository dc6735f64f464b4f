// Megatron's checkpoint directory convention (megatron/checkpointing.py):
//
//   SAVE/latest_checkpointed_iteration.txt   "100" (or "release"), no newline
//   SAVE/iter_0000100/                        config.json, model*.safetensors, mds_state.json
//
// A save is written into SAVE/.iter_0000100.tmp, renamed to SAVE/iter_0000100 (an existing one
// is swapped out atomically and then deleted), and only then is the latest file replaced, itself
// through a temporary file and a rename. A crash at any point therefore leaves latest naming a
// complete checkpoint. Each iter folder is a plain Hugging Face folder plus mds_state.json, so
// `--load SAVE/iter_0000100` and transformers' from_pretrained both read it.
// mds_state.json: {"mds_checkpoint_version": 1, "iteration": N, "consumed_samples": S,
// "args": {...}} (the run's arguments as given by the trainer).
// For now one process writes (rank 0); with sharded state every rank will write into the tmp
// folder and rank 0 renames after a barrier.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "mds/ckpt/hf_checkpoint.h"

namespace mds::ckpt {

// What a resume needs besides the weights (optimizer state comes with the resume issue).
struct TrainState {
  int64_t iteration = 0;
  int64_t consumed_samples = 0;
  nlohmann::json args = nlohmann::json::object();  // the run's arguments, as a JSON object
  // The trainer's scalars beyond the weights (fp16: the loss scaler and the LR schedule's
  // samples, which skipped steps hold back); empty: none.
  nlohmann::json optimizer = nlohmann::json::object();
};

std::string iter_dir_name(int64_t iteration);  // 100 -> "iter_0000100"

// Saves weights + state as SAVE/iter_XXXXXXX and marks it latest; returns that folder's path.
std::string save_checkpoint(const std::string& save_dir, const TrainState& state,
                            const model::LlamaConfig& cfg, const model::ParamTable& table,
                            const float* params, const HfSaveOptions& options = {});

// The folder to load weights from, given --load:
//   load/latest_checkpointed_iteration.txt exists -> load/iter_XXXXXXX (or load/release),
//   else load/config.json exists                   -> load itself (a plain HF folder),
//   else a UserError saying what was expected.
std::string resolve_load_dir(const std::string& load);

// mds_state.json of a checkpoint folder, or nullopt when absent (a plain HF folder).
std::optional<TrainState> read_train_state(const std::string& dir);

}  // namespace mds::ckpt
