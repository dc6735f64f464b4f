// The banner's memory per rank under tensor and sequence parallelism: on every T x S layout of
// the world, each rank's estimate (train/memory_report.h, from shapes) equals what its shard
// really allocates, after prepare() and after a training step and an evaluation (Ulysses
// staging, the TP slice of the logits chunk and the S > 1 buffers included).
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "mds/dist/topology.h"
#include "mds/model/llama.h"
#include "mds/train/memory_report.h"
#include "mpi_world.h"

namespace mds {
namespace {

using mds::testing::world;

TEST(MemoryReportSharded, EveryTensorSequenceLayoutMatchesAllocatedBuffers) {
  const int W = world().size();
  for (int tp = 1; tp <= W; ++tp) {
    if (W % tp != 0) continue;
    const int sp = W / tp;
    if (4 % tp != 0 || 4 % sp != 0) continue;
    SCOPED_TRACE("T" + std::to_string(tp) + " S" + std::to_string(sp));
    const dist::ParallelSizes sizes{tp, sp, 1, 1};
    const dist::Topology topo(sizes, world().rank());
    dist::ProcessGroups groups = dist::make_groups(world(), topo);
    model::LlamaConfig c;
    c.num_layers = 2;
    c.hidden_size = 64;
    c.ffn_hidden_size = 96;
    c.num_attention_heads = 8;
    c.num_key_value_heads = 4;
    c.seq_length = 16;
    c.vocab_size = 100;
    c.finalize(8, tp);
    const model::ModelShard shard = model::ModelShard::of(c, topo.coords().tp, tp, 0, 1);
    model::LlamaModel m(c, shard, parallel::ModelComm{groups.tp.get(), groups.sp.get()});
    m.init_weights(3);
    const int64_t b = 2, s = c.seq_length / sp;
    const model::BatchShape shape{b, s, topo.coords().sp * s};
    const train::MemoryReport want = train::estimate_memory(c, shard, sp, shape, 1);
    const int64_t adam = want.optimizer;  // the optimizer is not under test here
    m.prepare(shape, 1);
    auto expect_same = [&](const char* when) {
      const train::MemoryReport got = train::measured_memory(m, adam);
      EXPECT_EQ(got.params, want.params) << when;
      EXPECT_EQ(got.activations, want.activations) << when;
      EXPECT_EQ(got.head, want.head) << when;
      EXPECT_EQ(got.scratch, want.scratch) << when;
    };
    expect_same("after prepare()");
    std::mt19937 gen(11);
    std::vector<int32_t> ids(b * s);
    for (auto& t : ids) t = int32_t(gen() % uint32_t(c.vocab_size));
    m.zero_grads();
    m.forward_backward(ids.data(), ids.data(), b, s, 1.0f);
    m.forward_loss(ids.data(), ids.data(), b, s);
    expect_same("after a step and an evaluation");
  }
}

}  // namespace
}  // namespace mds
