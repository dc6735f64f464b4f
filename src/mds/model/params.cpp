#include "mds/model/params.h"

#include <algorithm>
#include <cmath>

#include "mds/core/error.h"

namespace mds::model {

ModelShard ModelShard::of(const LlamaConfig& c, int64_t tp_rank, int64_t tp_size, int64_t pp_rank,
                          int64_t pp_size) {
  ModelShard s;
  s.tp_rank = tp_rank;
  s.tp_size = tp_size;
  const int64_t base = c.num_layers / pp_size, extra = c.num_layers % pp_size;
  s.first_layer = pp_rank * base + std::min(pp_rank, extra);
  s.num_layers = base + (pp_rank < extra ? 1 : 0);
  if (pp_size == 1) s.num_layers = -1;
  s.embedding = pp_rank == 0;
  s.head = pp_rank == pp_size - 1;
  return s;
}

ParamTable::ParamTable(const LlamaConfig& c, const ModelShard& shard) {
  const float std = c.init_method_std;
  // Output projections (o_proj, down_proj) use std/sqrt(2L), as Megatron's scaled init.
  const float out_std = std / std::sqrt(2.0f * float(c.num_layers));
  const int64_t h = c.hidden_size, f = c.ffn_hidden_size;
  const int64_t tp = shard.tp_size;
  auto add = [&](std::string name, std::vector<int64_t> shape, float init_std, TPSplit split) {
    ParamInfo p;
    p.name = std::move(name);
    p.full_shape = shape;
    if (split != TPSplit::replicated) {
      const size_t dim = split == TPSplit::rows ? 0 : 1;
      MDS_ASSERT(shape[dim] % tp == 0, "{}: dimension {} of {} does not split over {} ranks",
                 p.name, dim, shape[dim], tp);
      shape[dim] /= tp;
      p.split_begin = shard.tp_rank * shape[dim];
    }
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
  if (shard.embedding)
    add("model.embed_tokens.weight", {c.padded_vocab_size, h}, std, TPSplit::rows);
  const int64_t first = shard.first_layer, last = first + shard.layers(c);
  for (int64_t i = first; i < last; ++i) {
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
  if (shard.head) {
    add("model.norm.weight", {h}, 0.0f, TPSplit::replicated);
    add("lm_head.weight", {c.padded_vocab_size, h}, std, TPSplit::rows);
  }
}

const ParamInfo& ParamTable::at(const std::string& name) const {
  const auto it = index_.find(name);
  MDS_ASSERT(it != index_.end(), "no parameter named {}", name);
  return params_[it->second];
}

void copy_slice_from_full(const ParamInfo& p, const float* full, float* local) {
  for_each_slice_run(
      p, [&](int64_t lo, int64_t fo, int64_t n) { std::copy_n(full + fo, n, local + lo); });
}

void copy_slice_to_full(const ParamInfo& p, const float* local, float* full) {
  for_each_slice_run(
      p, [&](int64_t lo, int64_t fo, int64_t n) { std::copy_n(local + lo, n, full + fo); });
}

}  // namespace mds::model
