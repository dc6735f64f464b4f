#include "mds/dist/topology.h"

#include "mds/core/error.h"

namespace mds::dist {

const char* group_name(Group g) {
  constexpr const char* names[kNumGroups] = {"tp", "sp", "dp", "pp", "sdp"};
  return names[int(g)];
}

ParallelSizes make_parallel_sizes(int world, int tp, int pp, int sp, const LayoutDims& d) {
  MDS_CHECK(tp >= 1 && pp >= 1 && sp >= 1,
            "--tensor-model-parallel-size ({}), --pipeline-model-parallel-size ({}) and "
            "--ds-sequence-parallel-size ({}) must be at least 1",
            tp, pp, sp);
  const int64_t model_parallel = int64_t(tp) * pp * sp;
  MDS_CHECK(world % model_parallel == 0,
            "the world size ({} processes) must be divisible by --tensor-model-parallel-size "
            "({}) x --pipeline-model-parallel-size ({}) x --ds-sequence-parallel-size ({}) = {}: "
            "change the sizes or the number of processes",
            world, tp, pp, sp, model_parallel);
  if (d.heads > 0)
    MDS_CHECK(d.heads % tp == 0,
              "--num-attention-heads ({}) must be divisible by --tensor-model-parallel-size ({})",
              d.heads, tp);
  if (d.kv_heads > 0)
    MDS_CHECK(d.kv_heads % tp == 0,
              "--num-key-value-heads ({}) must be divisible by --tensor-model-parallel-size ({})",
              d.kv_heads, tp);
  if (d.ffn > 0)
    MDS_CHECK(d.ffn % tp == 0,
              "--ffn-hidden-size ({}) must be divisible by --tensor-model-parallel-size ({})",
              d.ffn, tp);
  if (d.heads > 0)
    MDS_CHECK((d.heads / tp) % sp == 0,
              "--num-attention-heads / --tensor-model-parallel-size ({} / {}) must be divisible "
              "by --ds-sequence-parallel-size ({})",
              d.heads, tp, sp);
  if (d.kv_heads > 0)
    MDS_CHECK((d.kv_heads / tp) % sp == 0,
              "--num-key-value-heads / --tensor-model-parallel-size ({} / {}) must be divisible "
              "by --ds-sequence-parallel-size ({})",
              d.kv_heads, tp, sp);
  if (d.seq > 0)
    MDS_CHECK(d.seq % sp == 0,
              "--seq-length ({}) must be divisible by --ds-sequence-parallel-size ({})", d.seq, sp);
  if (d.layers > 0)
    MDS_CHECK(d.layers >= pp,
              "--num-layers ({}) must be at least --pipeline-model-parallel-size ({})", d.layers,
              pp);
  return ParallelSizes{tp, sp, int(world / model_parallel), pp};
}

Topology::Topology(ParallelSizes sizes, int rank) : sizes_(sizes), rank_(rank) {
  MDS_ASSERT(rank >= 0 && rank < sizes.world(), "rank {} outside a world of {}", rank,
             sizes.world());
  coords_ = coords_of(rank);
}

int Topology::rank_of(const GridCoords& c) const {
  const ParallelSizes& n = sizes_;
  return ((c.pp * n.dp + c.dp) * n.sp + c.sp) * n.tp + c.tp;
}

GridCoords Topology::coords_of(int rank) const {
  GridCoords c;
  c.tp = rank % sizes_.tp;
  rank /= sizes_.tp;
  c.sp = rank % sizes_.sp;
  rank /= sizes_.sp;
  c.dp = rank % sizes_.dp;
  c.pp = rank / sizes_.dp;
  return c;
}

int Topology::group_size(Group g) const {
  switch (g) {
    case Group::tp:
      return sizes_.tp;
    case Group::sp:
      return sizes_.sp;
    case Group::dp:
      return sizes_.dp;
    case Group::pp:
      return sizes_.pp;
    case Group::sdp:
      return sizes_.sp * sizes_.dp;
  }
  MDS_ASSERT(false, "unknown group");
}

int Topology::group_rank(Group g) const {
  switch (g) {
    case Group::tp:
      return coords_.tp;
    case Group::sp:
      return coords_.sp;
    case Group::dp:
      return coords_.dp;
    case Group::pp:
      return coords_.pp;
    case Group::sdp:
      return coords_.dp * sizes_.sp + coords_.sp;
  }
  MDS_ASSERT(false, "unknown group");
}

GridCoords Topology::member(Group g, int index) const {
  GridCoords c = coords_;
  switch (g) {
    case Group::tp:
      c.tp = index;
      break;
    case Group::sp:
      c.sp = index;
      break;
    case Group::dp:
      c.dp = index;
      break;
    case Group::pp:
      c.pp = index;
      break;
    case Group::sdp:
      c.sp = index % sizes_.sp;
      c.dp = index / sizes_.sp;
      break;
  }
  return c;
}

std::vector<int> Topology::group_members(Group g) const {
  std::vector<int> ranks(group_size(g));
  for (int i = 0; i < int(ranks.size()); ++i) ranks[i] = rank_of(member(g, i));
  return ranks;
}

// The group's first member identifies it: distinct groups of one kind have distinct first
// members, and every member computes the same one.
int Topology::group_color(Group g) const {
  return rank_of(member(g, 0));
}

Communicator& ProcessGroups::get(Group g) {
  switch (g) {
    case Group::tp:
      return *tp;
    case Group::sp:
      return *sp;
    case Group::dp:
      return *dp;
    case Group::pp:
      return *pp;
    case Group::sdp:
      return *sdp;
  }
  MDS_ASSERT(false, "unknown group");
}

ProcessGroups make_groups(Communicator& world, const Topology& t) {
  MDS_ASSERT(world.size() == t.sizes().world() && world.rank() == t.rank(),
             "topology of {} ranks (rank {}) over a world of {} (rank {})", t.sizes().world(),
             t.rank(), world.size(), world.rank());
  // Every rank splits in the same order: MPI_Comm_split is collective over the world.
  auto split = [&](Group g) { return world.split(t.group_color(g), t.group_rank(g)); };
  ProcessGroups groups;
  groups.tp = split(Group::tp);
  groups.sp = split(Group::sp);
  groups.dp = split(Group::dp);
  groups.pp = split(Group::pp);
  groups.sdp = split(Group::sdp);
  return groups;
}

}  // namespace mds::dist
