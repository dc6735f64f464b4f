// The parameter table: every weight of the model is a named view into one flat fp32 buffer,
// and the gradients mirror that buffer byte for byte. Optimizer, weight decay, checkpoints
// and (later) ZeRO shards and buckets all work from this table.
//
// Names are the Hugging Face Llama names, so a checkpoint is the table written out:
//   model.embed_tokens.weight                       [vpad, h]
//   model.layers.{i}.input_layernorm.weight         [h]
//   model.layers.{i}.self_attn.{q,k,v}_proj.weight  [nq*hd | nkv*hd | nkv*hd, h]  (adjacent:
//                                                   one fused [qkv, h] GEMM)
//   model.layers.{i}.self_attn.o_proj.weight        [h, nq*hd]
//   model.layers.{i}.post_attention_layernorm.weight [h]
//   model.layers.{i}.mlp.{gate,up}_proj.weight      [f, h] each (adjacent: one [2f, h] GEMM)
//   model.layers.{i}.mlp.down_proj.weight           [h, f]
//   model.norm.weight                               [h]
//   lm_head.weight                                  [vpad, h]
// The embedding and head hold padded_vocab_size rows; checkpoints store only vocab_size.
//
// A rank holds a shard of the model (ModelShard): the layers of its pipeline stage (names keep
// their global layer index), the embedding on the first stage, the final norm and head on the
// last, and of each tensor its tensor-parallel slice (Megatron's layout):
//   rows: q/k/v, gate/up (column-parallel: heads and ffn columns), embed_tokens and lm_head
//         (vocab-parallel: rank r holds vocabulary rows [r vpad/T, (r+1) vpad/T));
//   cols: o_proj, down_proj (row-parallel: their input dimension);
//   replicated: the norm weights.
// The buffer of a shard holds only its local slices, in the table order above.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mds/model/config.h"

namespace mds::model {

// How a tensor is cut across tensor-parallel ranks.
enum class TPSplit { replicated, rows, cols };

// The part of the model one rank holds.
struct ModelShard {
  int64_t tp_rank = 0, tp_size = 1;
  int64_t first_layer = 0, num_layers = -1;  // this pipeline stage's layers; -1: all
  bool embedding = true, head = true;        // first stage / last stage

  // Stage pp_rank of pp_size: layers split evenly; when pp_size does not divide the layers,
  // the first (layers mod pp_size) stages take one layer more.
  static ModelShard of(const LlamaConfig& c, int64_t tp_rank, int64_t tp_size, int64_t pp_rank,
                       int64_t pp_size);
  int64_t layers(const LlamaConfig& c) const { return num_layers < 0 ? c.num_layers : num_layers; }
  bool whole() const {
    return tp_size == 1 && first_layer == 0 && num_layers < 0 && embedding && head;
  }
};

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;       // this rank's slice
  std::vector<int64_t> full_shape;  // the logical tensor
  int64_t split_begin = 0;          // first row (rows) or column (cols) of the slice
  int64_t offset = 0;               // in floats, into the flat buffer
  int64_t numel = 0;
  bool decay = true;      // weight decay applies (not to 1-D tensors: norms)
  float init_std = 0.0f;  // N(0, init_std); 0 means ones (norm weights)
  TPSplit split = TPSplit::replicated;
};

class ParamTable {
 public:
  explicit ParamTable(const LlamaConfig& cfg, const ModelShard& shard = {});
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo& at(const std::string& name) const;  // InternalError when absent
  int64_t total() const { return total_; }

 private:
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in params_
  int64_t total_ = 0;
};

// Calls f(local_offset, full_offset, count) for each contiguous run of p's slice inside the
// logical tensor (offsets in elements): one run for a row slice, one per row for a column slice.
template <typename F>
void for_each_slice_run(const ParamInfo& p, F&& f) {
  if (p.split == TPSplit::cols) {
    const int64_t rows = p.shape[0], cols = p.shape[1], full_cols = p.full_shape[1];
    for (int64_t r = 0; r < rows; ++r) f(r * cols, r * full_cols + p.split_begin, cols);
  } else {
    const int64_t row = p.shape.size() > 1 ? p.numel / p.shape[0] : 1;
    f(int64_t(0), p.split_begin * row, p.numel);
  }
}

// The slice `p` describes, copied out of the logical tensor `full` (full_shape) into `local`
// (shape), or back.
void copy_slice_from_full(const ParamInfo& p, const float* full, float* local);
void copy_slice_to_full(const ParamInfo& p, const float* local, float* full);

}  // namespace mds::model
