// Hugging Face Llama checkpoints (LlamaForCausalLM): config.json + model.safetensors, or shards
// model-0000K-of-0000N.safetensors + model.safetensors.index.json, written from and read into the
// flat parameter buffer described by model::ParamTable (whose names are already the HF names).
//
// Vocabulary rows: the model holds padded_vocab_size rows of embed_tokens and lm_head; a
// checkpoint holds exactly vocab_size rows (the tokenizer's), as Hugging Face expects. On load,
// a checkpoint may hold V rows with tokenizer vocab <= V <= padded vocab; rows V.. of the model
// are set to ZERO (not left at their random init), so that loading is deterministic and
// independent of the seed. Those rows belong to no token: the embedding never looks them up and
// they are dropped again on save.
//
// Tied embeddings: if lm_head.weight is absent and config.json says tie_word_embeddings: true,
// lm_head is initialised as a copy of embed_tokens (mds keeps the two untied from then on, like
// Megatron's --untie-embeddings-and-output-weights), and a later save writes both.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "mds/ckpt/safetensors.h"
#include "mds/model/config.h"
#include "mds/model/params.h"

namespace mds::ckpt {

// The values of an HF config.json that matter to mds.
struct HfConfig {
  int64_t num_layers = 0;               // num_hidden_layers
  int64_t hidden_size = 0;              // hidden_size
  int64_t ffn_hidden_size = 0;          // intermediate_size
  int64_t num_attention_heads = 0;      // num_attention_heads
  int64_t num_key_value_heads = 0;      // num_key_value_heads (defaults to the heads)
  int64_t vocab_size = 0;               // vocab_size
  int64_t max_position_embeddings = 0;  // max_position_embeddings
  double rope_theta = 10000.0;          // rope_theta (HF's default when absent)
  double rms_norm_eps = 1e-6;           // rms_norm_eps (HF's default when absent)
  bool tie_word_embeddings = false;     // tie_word_embeddings
  std::optional<int64_t> bos_token_id, eos_token_id;
};

// Reads dir/config.json. A missing file, bad JSON, a non-Llama model_type or a missing shape key
// is a UserError naming the file.
HfConfig read_hf_config(const std::string& dir);

struct HfSaveOptions {
  StDType dtype = StDType::f32;             // f32 or bf16 (torch_dtype follows)
  int64_t max_shard_bytes = 5'000'000'000;  // HF's default "5GB"; above it, shard the weights
  std::optional<int64_t> bos_token_id, eos_token_id;  // written to config.json when known
};

// Writes config.json and the weights into dir (created if needed). Stale weight files of an
// earlier save in dir (model.safetensors, its index, model-*-of-*.safetensors) are removed first
// so that a loader never mixes two saves. params: the flat buffer of table.total() floats.
void save_hf_checkpoint(const std::string& dir, const model::LlamaConfig& cfg,
                        const model::ParamTable& table, const float* params,
                        const HfSaveOptions& options = {});

// Fills params (table.total() floats) from the checkpoint in dir. Every tensor of the table must
// be present with the model's shape (vocab rows: see the top of this file); a mismatch is a
// UserError naming the tensor, both shapes and the flag to change. Extra tensors (e.g.
// rotary_emb.inv_freq) are ignored, but extra layers are an error (--num-layers).
void load_hf_checkpoint(const std::string& dir, const model::LlamaConfig& cfg,
                        const model::ParamTable& table, float* params);

}  // namespace mds::ckpt
