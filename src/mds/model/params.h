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
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "mds/model/config.h"

namespace mds::model {

// How a tensor is cut across tensor-parallel ranks (used from the parallelism issue on).
enum class TPSplit { replicated, rows, cols };

struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // in floats, into the flat buffer
  int64_t numel = 0;
  bool decay = true;      // weight decay applies (not to 1-D tensors: norms)
  float init_std = 0.0f;  // N(0, init_std); 0 means ones (norm weights)
  TPSplit split = TPSplit::replicated;
};

class ParamTable {
 public:
  explicit ParamTable(const LlamaConfig& cfg);
  const std::vector<ParamInfo>& params() const { return params_; }
  const ParamInfo& at(const std::string& name) const;  // InternalError when absent
  int64_t total() const { return total_; }

 private:
  std::vector<ParamInfo> params_;
  std::unordered_map<std::string, size_t> index_;  // name -> position in params_
  int64_t total_ = 0;
};

}  // namespace mds::model
