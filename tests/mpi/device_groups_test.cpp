// The two sets of groups of ParallelContext: given a device world (on GPUs, the NCCL world over
// the MPI world's ranks; here a second MPI communicator standing in for it), every group of
// the device set is a communicator of its own with the topology's members, the model's TP and
// SP traffic goes through it, and the host groups stay the world's. Without one, the device
// groups are the host groups.
#include <gtest/gtest.h>

#include <vector>

#include "mds/train/parallel_context.h"
#include "mpi_world.h"

namespace mds::train {
namespace {

using mds::testing::world;

model::LlamaConfig small_model() {
  model::LlamaConfig c;
  c.num_layers = 4;
  c.hidden_size = 32;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.ffn_hidden_size = 64;
  c.seq_length = 16;
  c.vocab_size = 64;
  return c;
}

std::vector<int> members_over(dist::Communicator& c) {
  std::vector<int32_t> got(static_cast<size_t>(c.size()));
  const int32_t me = world().rank();
  c.all_gather(&me, got.data(), 1);
  return {got.begin(), got.end()};
}

TEST(DeviceGroups, AreTheirOwnCommunicatorsWithTheTopologysMembers) {
  const int p = world().size();
  for (int tp : {1, 2})
    for (int pp : {1, 2}) {
      if (p % (tp * pp) != 0) continue;
      const dist::ParallelSizes sizes{tp, 1, p / (tp * pp), pp};
      SCOPED_TRACE(::testing::Message() << "T" << tp << " P" << pp << " D" << sizes.dp);
      model::LlamaConfig c = small_model();
      c.finalize(8, tp);
      const std::unique_ptr<dist::Communicator> device_world = world().split(0, world().rank());
      ParallelContext par(world(), sizes, c, device_world.get());
      for (dist::Group g :
           {dist::Group::tp, dist::Group::sp, dist::Group::dp, dist::Group::pp, dist::Group::sdp}) {
        dist::Communicator& host = par.group(g);
        dist::Communicator& device = par.device_group(g);
        EXPECT_NE(&host, &device) << dist::group_name(g);
        ASSERT_EQ(device.size(), host.size()) << dist::group_name(g);
        EXPECT_EQ(device.rank(), host.rank()) << dist::group_name(g);
        EXPECT_EQ(members_over(device), par.topology().group_members(g)) << dist::group_name(g);
      }
      const parallel::ModelComm comm = par.model_comm();
      EXPECT_EQ(comm.tp, &par.device_group(dist::Group::tp));
      EXPECT_EQ(comm.sp, &par.device_group(dist::Group::sp));
    }
}

TEST(DeviceGroups, AreTheHostGroupsWithoutADeviceWorld) {
  model::LlamaConfig c = small_model();
  c.finalize(8, 1);
  ParallelContext par(world(), {1, 1, world().size(), 1}, c);
  for (dist::Group g :
       {dist::Group::tp, dist::Group::sp, dist::Group::dp, dist::Group::pp, dist::Group::sdp})
    EXPECT_EQ(&par.device_group(g), &par.group(g)) << dist::group_name(g);
  EXPECT_EQ(par.model_comm().tp, &par.group(dist::Group::tp));
}

// Traffic of either set counts for its group: the byte summary and timers add both.
TEST(DeviceGroups, TrafficOnEitherSetCountsForTheGroup) {
  model::LlamaConfig c = small_model();
  c.finalize(8, 1);
  const std::unique_ptr<dist::Communicator> device_world = world().split(0, world().rank());
  ParallelContext par(world(), {1, 1, world().size(), 1}, c, device_world.get());
  std::vector<float> x(10, 1.0f);
  const double before = par.comm_seconds(dist::Group::dp);
  par.uncounted([&] {
    par.device_group(dist::Group::dp).all_reduce(x.data(), 10, dist::ReduceOp::sum);
    return 0;
  });
  EXPECT_EQ(x[0], float(world().size()));
  EXPECT_GT(par.comm_seconds(dist::Group::dp), before);
}

}  // namespace
}  // namespace mds::train
