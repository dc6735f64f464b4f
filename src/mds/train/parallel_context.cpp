#include "mds/train/parallel_context.h"

#include <algorithm>

#include "mds/core/error.h"
#include "mds/train/sampler.h"

namespace mds::train {
namespace {
constexpr int kGatherTag = 7;  // the shards' messages to rank 0 in gather_model
}  // namespace

ParallelContext::ParallelContext(dist::Communicator& world, dist::ParallelSizes sizes,
                                 const model::LlamaConfig& config, dist::Communicator* device_world)
    : world_(world),
      topology_(sizes, world.rank()),
      groups_(dist::make_groups(world, topology_)),
      shard_(model::ModelShard::of(config, topology_.coords().tp, sizes.tp, topology_.coords().pp,
                                   sizes.pp)) {
  if (device_world && device_world != &world) {
    MDS_ASSERT(device_world->size() == world.size() && device_world->rank() == world.rank(),
               "the device world must hold the world's ranks in the same order");
    device_groups_ = dist::make_groups(*device_world, topology_);
  }
}

dist::CommStats ParallelContext::stats(dist::Group g) {
  dist::CommStats s = groups_.get(g).stats();
  if (!device_groups_.tp) return s;
  const dist::CommStats& d = device_groups_.get(g).stats();
  for (int k = 0; k < dist::kNumCommKinds; ++k) {
    s.calls[k] += d.calls[k];
    s.bytes[k] += d.bytes[k];
    s.seconds[k] += d.seconds[k];
  }
  return s;
}

int64_t ParallelContext::micro_batch_offset(int64_t k, int64_t micro) const {
  return megatron_sample_offset(k, micro, topology_.sizes().dp, topology_.coords().dp);
}

void ParallelContext::read_micro_batch(const data::SampleDataset& dataset, int64_t first, int64_t b,
                                       MicroBatch& local) {
  if (!first_stage() && !last_stage()) {
    local = MicroBatch{};
    return;
  }
  const dist::GridCoords& at = topology_.coords();
  const int64_t S = topology_.sizes().sp, s = dataset.seq_length(), s_local = s / S;
  if (S == 1 && groups_.tp->size() == 1) {  // nobody to share with: read straight into place
    train::read_micro_batch(dataset, first, b, local);
    return;
  }
  const int64_t n = b * s;
  shared_.resize(2 * n);
  if (at.tp == 0 && at.sp == 0) {
    train::read_micro_batch(dataset, first, b, whole_);
    std::copy_n(whole_.tokens.data(), n, shared_.data());
    std::copy_n(whole_.targets.data(), n, shared_.data() + n);
  }
  if (S > 1 && at.tp == 0) groups_.sp->broadcast(shared_.data(), 2 * n, 0);
  if (groups_.tp->size() > 1) groups_.tp->broadcast(shared_.data(), 2 * n, 0);
  local.b = b;
  local.s = s_local;
  local.tokens.resize(b * s_local);
  local.targets.resize(b * s_local);
  for (int64_t r = 0; r < b; ++r) {
    const int64_t from = r * s + at.sp * s_local;
    std::copy_n(shared_.data() + from, s_local, local.tokens.data() + r * s_local);
    std::copy_n(shared_.data() + n + from, s_local, local.targets.data() + r * s_local);
  }
}

double ParallelContext::reduce_loss(double last_stage_loss) {
  double loss = last_stage_loss;
  if (groups_.pp->size() > 1) groups_.pp->broadcast(&loss, 1, groups_.pp->size() - 1);
  if (groups_.sp->size() > 1) groups_.sp->all_reduce(&loss, 1, dist::ReduceOp::avg);
  if (groups_.dp->size() > 1) groups_.dp->all_reduce(&loss, 1, dist::ReduceOp::avg);
  return loss;
}

std::vector<float> ParallelContext::gather_model(const std::vector<float>& local,
                                                 const model::LlamaConfig& c,
                                                 const model::ParamTable& full_table) {
  const dist::ParallelSizes& n = topology_.sizes();
  const dist::GridCoords& at = topology_.coords();
  if (world_.rank() != 0) {
    if (at.dp == 0 && at.sp == 0) world_.send(local.data(), int64_t(local.size()), 0, kGatherTag);
    return {};
  }
  std::vector<float> full(full_table.total());
  std::vector<float> remote;
  for (int pp = 0; pp < n.pp; ++pp)
    for (int tp = 0; tp < n.tp; ++tp) {
      const model::ParamTable table(c, model::ModelShard::of(c, tp, n.tp, pp, n.pp));
      const float* params = local.data();
      if (tp != 0 || pp != 0) {
        remote.resize(table.total());
        world_.recv(remote.data(), table.total(), topology_.rank_of({tp, 0, 0, pp}), kGatherTag);
        params = remote.data();
      }
      for (const model::ParamInfo& p : table.params())
        model::copy_slice_to_full(p, params + p.offset, full.data() + full_table.at(p.name).offset);
    }
  return full;
}

std::vector<float> ParallelContext::take_slices(const model::ParamTable& full_table,
                                                const float* full,
                                                const model::ParamTable& local_table) {
  std::vector<float> local(static_cast<size_t>(local_table.total()));
  for (const model::ParamInfo& p : local_table.params())
    model::copy_slice_from_full(p, full + full_table.at(p.name).offset, local.data() + p.offset);
  return local;
}

double ParallelContext::comm_seconds(dist::Group g) {
  return g == dist::Group::dp
             ? stats(dist::Group::dp).total_seconds() + stats(dist::Group::sdp).total_seconds()
             : stats(g).total_seconds();
}

template <typename Model>
std::string ParallelContext::comm_summary(int64_t iterations, int64_t micro_batches, int64_t micro,
                                          const Model& m) {
  if (iterations <= 0) return "";
  const model::LlamaConfig& c = m.config();
  const dist::ParallelSizes& sz = topology_.sizes();
  const int64_t M = micro_batches, L = m.shard().layers(c), h = c.hidden_size;
  const int64_t n = micro * c.seq_length / sz.sp;  // this rank's tokens of a micro-batch
  const model::BlockDims d = model::BlockDims::of(c, sz.tp, sz.sp);
  const bool data = first_stage() || last_stage();
  // Recomputation repeats forward traffic: a checkpointed block's all-reduces and
  // all-to-alls (full), or the attention output's all-to-all back (selective, S > 1).
  const model::RecomputePlan plan(m.recompute(), L);
  const int64_t again = plan.checkpointed_layers();
  // Activations move in the model's element type (E bytes: 4, or 2 in bf16); the loss
  // statistics, the gradients and the data in their own.
  const int64_t E = int64_t(sizeof(*m.params().data()));
  const int64_t selective_sp = m.recompute().selective() && d.sp > 1 ? E * L * n * d.qd() : 0;
  const int64_t data_bytes = data ? 8 * micro * c.seq_length : 0;  // tokens | targets, int32
  // What one training iteration moves in this rank's groups (payload bytes, communicator.h).
  auto theory = [&](dist::Group g) -> int64_t {
    switch (g) {
      case dist::Group::tp:  // 2 all-reduces of [n, h] per block forward, 2 in backward, the
                             // embedding's, the head's input gradient and its 3 loss stats
        // (row max and target logit fp32, sum of exps double)
        return M * (E * ((4 * L + 2 * again) * n * h + (first_stage() ? n * h : 0) +
                         (last_stage() ? n * h : 0)) +
                    (last_stage() ? 16 * n : 0) + data_bytes) +
               8;            // the gradient norm
      case dist::Group::sp:  // all-to-all of q|k|v and of the attention output, both ways
        return M * (E * (2 * L + again) * n * (d.qkvd() + d.qd()) + selective_sp +
                    (topology_.coords().tp == 0 ? data_bytes : 0)) +
               8;            // the loss
      case dist::Group::pp:  // an activation and a gradient per micro-batch and neighbour
        return M * 2 * E * n * h * ((first_stage() ? 0 : 1) + (last_stage() ? 0 : 1)) + 8 + 8;
      case dist::Group::dp:
        return 8;  // the loss
      case dist::Group::sdp:
        return 4 * int64_t(m.table().total());  // every gradient once
    }
    return 0;
  };
  std::string out;
  for (dist::Group g :
       {dist::Group::tp, dist::Group::sp, dist::Group::pp, dist::Group::dp, dist::Group::sdp}) {
    const dist::Communicator& comm = groups_.get(g);
    if (comm.size() == 1) continue;
    dist::CommStats counted = stats(g);
    for (int k = 0; k < dist::kNumCommKinds; ++k) {
      counted.calls[k] -= uncounted_[int(g)].calls[k];
      counted.bytes[k] -= uncounted_[int(g)].bytes[k];
    }
    std::string kinds;
    for (int k = 0; k < dist::kNumCommKinds; ++k)
      if (counted.calls[k] > 0)
        kinds += strfmt(", {} x{}", dist::comm_kind_name(dist::CommKind(k)),
                        double(counted.calls[k]) / double(iterations));
    out += strfmt("> {} group ({} ranks): {} bytes per iteration{}; in theory {}\n",
                  dist::group_name(g), comm.size(),
                  int64_t(double(counted.total_bytes()) / double(iterations)), kinds, theory(g));
  }
  return out;
}

template std::string ParallelContext::comm_summary(int64_t, int64_t, int64_t,
                                                   const model::LlamaModelT<float>&);
template std::string ParallelContext::comm_summary(int64_t, int64_t, int64_t,
                                                   const model::LlamaModelT<bf16>&);
template std::string ParallelContext::comm_summary(int64_t, int64_t, int64_t,
                                                   const model::LlamaModelT<fp16>&);

}  // namespace mds::train
