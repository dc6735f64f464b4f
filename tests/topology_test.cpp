// The 4D grid as a pure function (no MPI): rank <-> coordinates, group membership for every
// factorisation of 8 ranks, Megatron's documented examples, layout errors that name the flags,
// and the world-of-one communicator a process gets without mpirun.
#include "mds/dist/topology.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

#include "mds/core/error.h"
#include "mds/dist/mpi_communicator.h"
#include "mds/parallel/grad_sync.h"

namespace mds::dist {
namespace {

constexpr Group kGroups[] = {Group::tp, Group::sp, Group::dp, Group::pp, Group::sdp};

std::vector<ParallelSizes> factorisations(int world) {
  std::vector<ParallelSizes> out;
  for (int tp = 1; tp <= world; ++tp)
    for (int sp = 1; sp <= world; ++sp)
      for (int pp = 1; pp <= world; ++pp)
        if (world % (tp * sp * pp) == 0) out.push_back({tp, sp, world / (tp * sp * pp), pp});
  return out;
}

// Which coordinates the members of a group may differ in.
bool varies(Group g, char axis) {
  switch (g) {
    case Group::tp:
      return axis == 't';
    case Group::sp:
      return axis == 's';
    case Group::dp:
      return axis == 'd';
    case Group::pp:
      return axis == 'p';
    case Group::sdp:
      return axis == 's' || axis == 'd';
  }
  return false;
}

class EightRanks : public ::testing::TestWithParam<ParallelSizes> {};

TEST_P(EightRanks, GroupsPartitionTheWorldAlongTheirAxes) {
  const ParallelSizes n = GetParam();
  ASSERT_EQ(n.world(), 8);
  for (int r = 0; r < 8; ++r) {
    const Topology t(n, r);
    const GridCoords c = t.coords();
    EXPECT_EQ(((c.pp * n.dp + c.dp) * n.sp + c.sp) * n.tp + c.tp, r);
    EXPECT_EQ(t.rank_of(c), r);
    for (Group g : kGroups) {
      const std::vector<int> m = t.group_members(g);
      ASSERT_EQ(int(m.size()), t.group_size(g)) << group_name(g);
      EXPECT_EQ(m[t.group_rank(g)], r) << group_name(g);
      EXPECT_TRUE(std::is_sorted(m.begin(), m.end())) << group_name(g);
      for (int other : m) {
        const GridCoords o = t.coords_of(other);
        if (!varies(g, 't')) EXPECT_EQ(o.tp, c.tp) << group_name(g);
        if (!varies(g, 's')) EXPECT_EQ(o.sp, c.sp) << group_name(g);
        if (!varies(g, 'd')) EXPECT_EQ(o.dp, c.dp) << group_name(g);
        if (!varies(g, 'p')) EXPECT_EQ(o.pp, c.pp) << group_name(g);
        // Every member sees the same group and the same colour.
        const Topology to(n, other);
        EXPECT_EQ(to.group_members(g), m) << group_name(g);
        EXPECT_EQ(to.group_color(g), t.group_color(g)) << group_name(g);
      }
    }
  }
  // Colours differ between groups of one kind: world / group size distinct colours.
  for (Group g : kGroups) {
    std::set<int> colours;
    for (int r = 0; r < 8; ++r) colours.insert(Topology(n, r).group_color(g));
    EXPECT_EQ(int(colours.size()), 8 / Topology(n, 0).group_size(g)) << group_name(g);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryFactorisation, EightRanks, ::testing::ValuesIn(factorisations(8)),
                         [](const ::testing::TestParamInfo<ParallelSizes>& info) {
                           const ParallelSizes& n = info.param;
                           return "T" + std::to_string(n.tp) + "S" + std::to_string(n.sp) + "D" +
                                  std::to_string(n.dp) + "P" + std::to_string(n.pp);
                         });

TEST(Topology, FactorisationsOfEightAreAllCovered) {
  EXPECT_EQ(factorisations(8).size(), 20u);  // ordered (a, b, c, d) with a b c d = 2^3: C(6,3)
}

// 16 ranks, T = S = P = 2 (so D = 2): Megatron's example groups, with SP in ezpz's CP slot.
TEST(Topology, MatchesMegatronExampleOfSixteenRanks) {
  const ParallelSizes n{2, 2, 2, 2};
  const Topology t0(n, 0), t5(n, 5);
  EXPECT_EQ(t0.group_members(Group::tp), (std::vector<int>{0, 1}));
  EXPECT_EQ(t0.group_members(Group::sp), (std::vector<int>{0, 2}));
  EXPECT_EQ(t0.group_members(Group::dp), (std::vector<int>{0, 4}));
  EXPECT_EQ(t0.group_members(Group::pp), (std::vector<int>{0, 8}));
  EXPECT_EQ(t0.group_members(Group::sdp), (std::vector<int>{0, 2, 4, 6}));
  EXPECT_EQ(t5.group_members(Group::sdp), (std::vector<int>{1, 3, 5, 7}));
  EXPECT_EQ(t5.group_rank(Group::sdp), 2);  // dp 1 x S 2 + sp 0
  EXPECT_EQ(Topology(n, 13).group_members(Group::pp), (std::vector<int>{5, 13}));
}

TEST(Topology, DataParallelIsWhatRemains) {
  const ParallelSizes s = make_parallel_sizes(8, 2, 1, 2, {});
  EXPECT_EQ(s.tp, 2);
  EXPECT_EQ(s.sp, 2);
  EXPECT_EQ(s.pp, 1);
  EXPECT_EQ(s.dp, 2);
  EXPECT_EQ(make_parallel_sizes(3, 1, 1, 1, {}).dp, 3);
}

void expect_layout_error(int world, int tp, int pp, int sp, LayoutDims d,
                         const std::vector<std::string>& words) {
  try {
    make_parallel_sizes(world, tp, pp, sp, d);
    ADD_FAILURE() << "accepted world " << world << " T" << tp << " P" << pp << " S" << sp;
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const std::string& w : words) EXPECT_NE(msg.find(w), std::string::npos) << msg;
  }
}

TEST(Topology, InvalidLayoutsNameTheFlags) {
  expect_layout_error(6, 4, 1, 1, {}, {"world size (6", "--tensor-model-parallel-size (4)"});
  expect_layout_error(8, 2, 3, 1, {}, {"--pipeline-model-parallel-size (3)"});
  expect_layout_error(4, 1, 1, 0, {}, {"--ds-sequence-parallel-size (0)"});
  LayoutDims d{8, 2, 128, 64, 4};
  expect_layout_error(4, 4, 1, 1, d, {"--num-key-value-heads (2)", "(4)"});
  expect_layout_error(8, 1, 1, 8, {6, 0, 0, 0, 0}, {"--num-attention-heads", "(8)"});
  expect_layout_error(2, 2, 1, 1, {4, 4, 129, 0, 0}, {"--ffn-hidden-size (129)"});
  expect_layout_error(2, 1, 1, 2, {4, 4, 128, 63, 0}, {"--seq-length (63)"});
  expect_layout_error(2, 1, 2, 1, {4, 4, 128, 64, 1}, {"--num-layers (1)"});
  expect_layout_error(4, 2, 1, 2, {4, 2, 128, 64, 2}, {"--num-key-value-heads", "sequence"});
  EXPECT_EQ(make_parallel_sizes(16, 2, 2, 2, {8, 4, 128, 64, 4}).dp, 2);
}

TEST(SelfCommunicator, IsAWorldOfOneWithoutMpi) {
  const auto w = make_self_communicator();
  EXPECT_EQ(w->size(), 1);
  EXPECT_EQ(w->rank(), 0);
  float x[3] = {1, 2, 3}, y[3] = {};
  w->all_reduce(x, 3, ReduceOp::avg);
  EXPECT_EQ(x[2], 3.0f);
  w->all_gather(x, y, 3);
  EXPECT_EQ(y[1], 2.0f);
  EXPECT_EQ(w->stats().calls[int(CommKind::all_gather)], 1);
  EXPECT_EQ(w->stats().bytes[int(CommKind::all_gather)], 12);
  EXPECT_THROW(w->send(x, 3, 1), InternalError);
  // A world of one splits into groups of one, whatever the layout says.
  const Topology t(ParallelSizes{}, 0);
  ProcessGroups g = make_groups(*w, t);
  EXPECT_EQ(g.get(Group::sdp).size(), 1);
  parallel::average_gradients(g.get(Group::sdp), x, 3, 2);
  EXPECT_EQ(x[0], 1.0f);
}

}  // namespace
}  // namespace mds::dist
