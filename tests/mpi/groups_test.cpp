// The groups built by make_groups over MPI: for every layout of the world's ranks, each
// group's communicator has the topology's size and rank, and an all-gather of world ranks over
// it returns exactly the topology's members, in order. Also the bucketed gradient average.
#include <gtest/gtest.h>

#include <vector>

#include "mds/dist/topology.h"
#include "mds/parallel/grad_sync.h"
#include "mpi_world.h"

namespace mds::dist {
namespace {

using mds::testing::world;

std::vector<ParallelSizes> layouts(int p) {
  std::vector<ParallelSizes> out;
  for (int tp = 1; tp <= p; ++tp)
    for (int sp = 1; tp * sp <= p; ++sp)
      for (int pp = 1; tp * sp * pp <= p; ++pp)
        if (p % (tp * sp * pp) == 0) out.push_back({tp, sp, p / (tp * sp * pp), pp});
  return out;
}

TEST(ProcessGroups, MatchTheTopologyForEveryLayout) {
  for (const ParallelSizes& sizes : layouts(world().size())) {
    SCOPED_TRACE(::testing::Message()
                 << "T" << sizes.tp << " S" << sizes.sp << " D" << sizes.dp << " P" << sizes.pp);
    const Topology topo(sizes, world().rank());
    ProcessGroups groups = make_groups(world(), topo);
    for (Group g : {Group::tp, Group::sp, Group::dp, Group::pp, Group::sdp}) {
      Communicator& c = groups.get(g);
      ASSERT_EQ(c.size(), topo.group_size(g)) << group_name(g);
      EXPECT_EQ(c.rank(), topo.group_rank(g)) << group_name(g);
      std::vector<int32_t> members(c.size());
      const int32_t me = world().rank();
      c.all_gather(&me, members.data(), 1);
      const std::vector<int> want = topo.group_members(g);
      EXPECT_EQ(std::vector<int>(members.begin(), members.end()), want) << group_name(g);
    }
  }
}

TEST(GradSync, AveragesInBucketsOfAnySize) {
  const int p = world().size(), r = world().rank();
  const int64_t n = 11;
  for (int64_t bucket : {int64_t(1), int64_t(3), n, n + 5}) {
    std::vector<float> g(n);
    for (int64_t i = 0; i < n; ++i) g[i] = float(r * 100 + i);
    auto group = world().split(0, r);
    parallel::average_gradients(*group, g.data(), n, bucket);
    for (int64_t i = 0; i < n; ++i)
      EXPECT_FLOAT_EQ(g[i], 100.0f * float(p - 1) / 2.0f + float(i)) << "bucket " << bucket;
    EXPECT_EQ(group->stats().calls[int(CommKind::all_reduce)], (n + bucket - 1) / bucket);
    EXPECT_EQ(group->stats().bytes[int(CommKind::all_reduce)], n * 4);
  }
}

// The overlapped form: a bucket starts as soon as the gradients under it are final (from the
// end of the buffer down), before finish(); finish reduces the rest and waits. The result is
// the plain average, whatever the order in which backward declares its gradients final.
TEST(GradSync, StartsEachBucketOnceItsGradientsAreFinal) {
  const int p = world().size(), r = world().rank();
  const int64_t n = 10, bucket = 3;
  std::vector<float> g(n);
  for (int64_t i = 0; i < n; ++i) g[i] = float(r * 100 + i);
  auto group = world().split(0, r);
  const auto started = [&] { return group->stats().calls[int(CommKind::all_reduce)]; };
  parallel::GradientAverager averager(*group, g.data(), n, bucket);
  averager.ready_from(8);  // [8, 10): less than a bucket
  EXPECT_EQ(started(), 0);
  averager.ready_from(7);  // [7, 10) is one bucket
  EXPECT_EQ(started(), 1);
  averager.ready_from(1);  // [4, 7) and [1, 4)
  EXPECT_EQ(started(), 3);
  averager.finish();  // [0, 1)
  EXPECT_EQ(started(), 4);
  EXPECT_EQ(group->stats().bytes[int(CommKind::all_reduce)], n * 4);
  for (int64_t i = 0; i < n; ++i) EXPECT_FLOAT_EQ(g[i], 100.0f * float(p - 1) / 2.0f + float(i));
}

}  // namespace
}  // namespace mds::dist
