#include "mds/model/llama.h"

#include <algorithm>
#include <type_traits>

#include "mds/core/error.h"
#include "mds/core/rng.h"
#include "mds/ops/ops.h"

namespace mds::model {

template <typename Elem>
LlamaModelT<Elem>::LlamaModelT(const LlamaConfig& config, const ModelShard& shard,
                               parallel::ModelComm comm, const Recompute& recompute,
                               ops::Backend& backend)
    : k_(backend),
      cfg_(config),
      shard_(shard),
      comm_(comm),
      recompute_(recompute),
      plan_(recompute, shard.layers(config)),
      table_(config, shard),
      params_(backend, table_.total()),
      grads_(backend, table_.total()),
      layers_(shard.layers(config)),
      rope_(config, backend),
      scratch_(backend),
      ulysses_(backend),
      env_{backend,
           cfg_,
           BlockDims::of(cfg_, comm_.tp_size(), comm_.sp_size()),
           rope_,
           comm_,
           scratch_,
           ulysses_,
           recompute.selective()},
      d_resid_(backend),
      stage_input_(backend),
      stage_d_output_(backend),
      head_(backend) {
  MDS_ASSERT(shard.tp_size == comm_.tp_size() && shard.tp_rank == comm_.tp_rank(),
             "shard of TP rank {}/{} on a TP group rank {}/{}", shard.tp_rank, shard.tp_size,
             comm_.tp_rank(), comm_.tp_size());
  for (int64_t l = 0; l < layers_; ++l) {
    block_params_.push_back(BlockWeights<Elem>::in(params_.data(), table_, shard.first_layer + l));
    block_grads_.push_back(BlockGrads::in(grads_.data(), table_, shard.first_layer + l));
    block_grads_begin_.push_back(
        table_.at(strfmt("model.layers.{}.input_layernorm.weight", shard.first_layer + l)).offset);
  }
  head_grads_begin_ = shard.head ? table_.at("model.norm.weight").offset : table_.total();
}

template <typename Elem>
void LlamaModelT<Elem>::init_weights(uint64_t seed) {
  std::vector<float> host(
      static_cast<size_t>(params_.size()));  // drawn on the host, then copied in
  for (const ParamInfo& p : table_.params()) {
    float* w = host.data() + p.offset;
    if (p.init_std == 0.0f) {
      std::fill(w, w + p.numel, 1.0f);
      continue;
    }
    const uint64_t stream = stream_id(p.name);
    for_each_slice_run(p, [&](int64_t local, int64_t full, int64_t n) {
      fill_normal(w + local, n, p.init_std, seed, stream, full);
    });
  }
  if constexpr (std::is_same_v<Elem, float>) {
    params_.upload(host.data(), params_.size());
  } else {  // the model's copy rounded from the fp32 draw (the optimizer keeps the fp32 one)
    std::vector<Elem> cast(host.begin(), host.end());
    params_.upload(cast.data(), params_.size());
  }
}

template <typename Elem>
void LlamaModelT<Elem>::zero_grads() {
  grads_.zero();
}

template <typename Elem>
void LlamaModelT<Elem>::prepare(const BatchShape& shape, int slots) {
  const bool same = shape_.b == shape.b && shape_.s == shape.s;
  shape_ = shape;
  if (!shard_.embedding) stage_input_.resize(shape.n() * cfg_.hidden_size);
  if (!shard_.head) stage_d_output_.resize(shape.n() * cfg_.hidden_size);
  if (same && int(slots_.size()) >= slots) return;
  if (!same) slots_.clear();
  const int64_t nh = shape.n() * cfg_.hidden_size;
  const bool keep_attention = !recompute_.selective();
  while (int(slots_.size()) < slots) {
    Slot& s = slots_.emplace_back(k_);
    if (shard_.embedding) s.tokens.resize(shape.n());
    for (int64_t l = 0; l <= layers_; ++l) {
      s.resid.emplace_back(k_);
      if (plan_.keeps_input(l)) s.resid.back().resize(nh);
    }
    for (int64_t l = 0; l < layers_; ++l) {
      s.acts.emplace_back(k_);
      if (!plan_.checkpointed(l)) s.acts.back().resize(env_.dims, shape, keep_attention);
    }
    if (shard_.head) s.d_out.resize(nh);
  }
  if (!same || ws_.acts.empty()) {
    ws_.acts.clear();
    ws_.resid.clear();
    for (int64_t i = 0; i < plan_.max_chunk(); ++i) {
      ws_.acts.emplace_back(k_).resize(env_.dims, shape, keep_attention);
      ws_.resid.emplace_back(k_, nh);
    }
  }
  scratch_.resize(env_.dims, shape, recompute_.selective());
  d_resid_.resize(nh);
  if (shard_.head) head_.prepare(shape.n(), cfg_, comm_.tp_size());
  if (comm_.sp_size() > 1)  // the staging is in fp32 words
    ulysses_.reserve((shape.n() * env_.dims.qkvd() * int64_t(sizeof(Elem)) + 3) / 4);
}

template <typename Elem>
typename LlamaModelT<Elem>::AllocatedBytes LlamaModelT<Elem>::allocated_bytes() const {
  auto bytes = [](const auto& v) { return v.capacity() * int64_t(sizeof(*v.data())); };
  AllocatedBytes m;
  m.params = bytes(params_);
  m.grads = bytes(grads_);
  for (const Slot& s : slots_) {
    m.activations += bytes(s.tokens) + bytes(s.d_out);
    for (const auto& r : s.resid) m.activations += bytes(r);
    for (const BlockActs<Elem>& a : s.acts) m.activations += a.allocated_bytes();
  }
  m.head = head_.allocated_bytes();
  m.scratch = scratch_.allocated_bytes() + bytes(d_resid_) + bytes(rope_.cos) + bytes(rope_.sin) +
              ulysses_.allocated_bytes() + bytes(stage_input_) + bytes(stage_d_output_);
  for (const BlockActs<Elem>& a : ws_.acts) m.scratch += a.allocated_bytes();
  for (const auto& r : ws_.resid) m.scratch += bytes(r);
  return m;
}

template <typename Elem>
const Elem* LlamaModelT<Elem>::forward(int slot, const int32_t* tokens, const Elem* input) {
  Slot& s = slots_.at(slot);
  const int64_t n = shape_.n(), h = cfg_.hidden_size;
  if (shard_.embedding) {
    s.tokens.upload(tokens, n);
    // Vocab-parallel embedding: each rank looks up the ids in its range, the sum is the lookup.
    k_.embedding_forward(s.resid[0].data(), s.tokens.data(), param("model.embed_tokens.weight"), n,
                         h, comm_.tp_rank() * vocab_rows(), vocab_rows());
    comm_.tp_all_reduce(s.resid[0].data(), n * h);
  } else {
    k_.copy(s.resid[0].data(), input, sizeof(Elem) * size_t(n * h));
  }
  for (int64_t l = 0; l < layers_; ++l)
    block_forward(block_input(s, l + 1), block_input(s, l), block_params_[l], block_acts(s, l),
                  env_, shape_);
  return s.resid.back().data();
}

template <typename Elem>
Elem* LlamaModelT<Elem>::block_input(Slot& s, int64_t l) {
  return plan_.keeps_input(l) ? s.resid[l].data() : ws_.resid[l - plan_.chunk_begin(l)].data();
}

template <typename Elem>
BlockActs<Elem>& LlamaModelT<Elem>::block_acts(Slot& s, int64_t l) {
  return plan_.checkpointed(l) ? ws_.acts[l - plan_.chunk_begin(l)] : s.acts[l];
}

template <typename Elem>
void LlamaModelT<Elem>::recompute_chunk(Slot& s, int64_t begin, int64_t end) {
  for (int64_t l = begin; l < end; ++l) {
    Elem* y = l + 1 < end ? block_input(s, l + 1) : ws_.resid[0].data();
    block_forward(y, block_input(s, l), block_params_[l], block_acts(s, l), env_, shape_);
  }
}

template <typename Elem>
double LlamaModelT<Elem>::loss(int slot, const int32_t* targets) {
  MDS_ASSERT(shard_.head, "loss() on a pipeline stage without the head");
  const int64_t n = shape_.n();
  return head_.forward(slots_.at(slot).resid.back().data(), targets, n, param("model.norm.weight"),
                       param("lm_head.weight"), cfg_, comm_) /
         double(n);
}

template <typename Elem>
double LlamaModelT<Elem>::loss_and_grad(int slot, const int32_t* targets, float loss_weight) {
  MDS_ASSERT(shard_.head, "loss_and_grad() on a pipeline stage without the head");
  Slot& s = slots_.at(slot);
  const int64_t n = shape_.n();
  s.d_out.resize(n * cfg_.hidden_size);
  return head_.forward_backward(s.d_out.data(), grad("model.norm.weight"), grad("lm_head.weight"),
                                s.resid.back().data(), targets, n, param("model.norm.weight"),
                                param("lm_head.weight"), loss_weight / float(n), cfg_, comm_) /
         double(n);
}

template <typename Elem>
const Elem* LlamaModelT<Elem>::backward(int slot, const Elem* d_output,
                                        const GradsFinal& grads_final) {
  Slot& s = slots_.at(slot);
  const int64_t n = shape_.n(), h = cfg_.hidden_size;
  auto final_from = [&](int64_t begin) {
    if (grads_final) grads_final(begin);
  };
  final_from(head_grads_begin_);  // the head's backward ran in loss_and_grad
  Elem* dx = d_resid_.data();
  k_.copy(dx, d_output ? d_output : s.d_out.data(), sizeof(Elem) * size_t(n * h));
  for (int64_t l = layers_ - 1; l >= 0; --l) {
    if (plan_.checkpointed(l) && l + 1 == plan_.chunk_end(l))
      recompute_chunk(s, plan_.chunk_begin(l), l + 1);
    block_backward(dx, block_input(s, l), block_params_[l], block_grads_[l], block_acts(s, l), env_,
                   shape_);
    final_from(block_grads_begin_[size_t(l)]);
  }
  if (shard_.embedding)
    k_.embedding_backward(grad("model.embed_tokens.weight"), dx, s.tokens.data(), n, h,
                          comm_.tp_rank() * vocab_rows(), vocab_rows());
  final_from(0);
  return dx;
}

template <typename Elem>
double LlamaModelT<Elem>::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t b,
                                           int64_t s, float loss_weight) {
  MDS_ASSERT(shard_.embedding && shard_.head, "forward_backward needs the whole pipeline");
  prepare({b, s, comm_.sp_rank() * s}, 1);
  forward(0, tokens, nullptr);
  const double mean = loss_and_grad(0, targets, loss_weight);
  backward(0, nullptr);
  return mean;
}

template <typename Elem>
double LlamaModelT<Elem>::forward_loss(const int32_t* tokens, const int32_t* targets, int64_t b,
                                       int64_t s) {
  MDS_ASSERT(shard_.embedding && shard_.head, "forward_loss needs the whole pipeline");
  prepare({b, s, comm_.sp_rank() * s}, 1);
  forward(0, tokens, nullptr);
  return loss(0, targets);
}

template class LlamaModelT<float>;
template class LlamaModelT<bf16>;
template class LlamaModelT<fp16>;

}  // namespace mds::model
