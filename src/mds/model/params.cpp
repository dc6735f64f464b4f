#include "mds/model/params.h"

#include <cmath>

#include "mds/core/error.h"

namespace mds::model {

ParamTable::ParamTable(const LlamaConfig& c) {
  const float std = c.init_method_std;
  // Output projections (o_proj, down_proj) use std/sqrt(2L), as Megatron's scaled init.
  const float out_std = std / std::sqrt(2.0f * float(c.num_layers));
  const int64_t h = c.hidden_size, f = c.ffn_hidden_size;
  auto add = [&](std::string name, std::vector<int64_t> shape, float init_std, TPSplit split) {
    ParamInfo p;
    p.name = std::move(name);
    p.numel = 1;
    for (int64_t d : shape) p.numel *= d;
    p.shape = std::move(shape);
    p.offset = total_;
    p.decay = p.shape.size() > 1;
    p.init_std = init_std;
    p.split = split;
    total_ += p.numel;
    index_.emplace(p.name, params_.size());
    params_.push_back(std::move(p));
  };
  add("model.embed_tokens.weight", {c.padded_vocab_size, h}, std, TPSplit::rows);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    add(l + "input_layernorm.weight", {h}, 0.0f, TPSplit::replicated);
    add(l + "self_attn.q_proj.weight", {c.q_dim(), h}, std, TPSplit::rows);
    add(l + "self_attn.k_proj.weight", {c.kv_dim(), h}, std, TPSplit::rows);
    add(l + "self_attn.v_proj.weight", {c.kv_dim(), h}, std, TPSplit::rows);
    add(l + "self_attn.o_proj.weight", {h, c.q_dim()}, out_std, TPSplit::cols);
    add(l + "post_attention_layernorm.weight", {h}, 0.0f, TPSplit::replicated);
    add(l + "mlp.gate_proj.weight", {f, h}, std, TPSplit::rows);
    add(l + "mlp.up_proj.weight", {f, h}, std, TPSplit::rows);
    add(l + "mlp.down_proj.weight", {h, f}, out_std, TPSplit::cols);
  }
  add("model.norm.weight", {h}, 0.0f, TPSplit::replicated);
  add("lm_head.weight", {c.padded_vocab_size, h}, std, TPSplit::rows);
}

const ParamInfo& ParamTable::at(const std::string& name) const {
  const auto it = index_.find(name);
  MDS_ASSERT(it != index_.end(), "no parameter named {}", name);
  return params_[it->second];
}

}  // namespace mds::model
