// The 4D grid: where a rank sits in (tensor, sequence, data, pipeline) and which ranks share
// each of its groups. Rank order is tensor-parallel fastest, then sequence, then data, then
// pipeline (Megatron's parallel_state.py; TP groups sit inside a node):
//
//   rank = ((pp * D + dp) * S + sp) * T + tp
//
// Groups: TP (same sp, dp, pp), SP (same tp, dp, pp), DP (same tp, sp, pp), PP (same tp, sp,
// dp), and the sequence-data group SxD (same tp, pp; local rank dp * S + sp) over which
// gradients are averaged and ZeRO partitions. The grid itself is a pure function of the sizes
// (unit-testable without MPI); make_groups builds one communicator per group.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "mds/dist/communicator.h"

namespace mds::dist {

enum class Group { tp, sp, dp, pp, sdp };
inline constexpr int kNumGroups = 5;
const char* group_name(Group g);  // "tp", "sp", "dp", "pp", "sdp"

struct ParallelSizes {
  int tp = 1, sp = 1, dp = 1, pp = 1;
  int world() const { return tp * sp * dp * pp; }
};

struct GridCoords {
  int tp = 0, sp = 0, dp = 0, pp = 0;
};

// The model dimensions a layout must divide. Zero means "not checked".
struct LayoutDims {
  int64_t heads = 0, kv_heads = 0, ffn = 0, seq = 0, layers = 0;
};

// D = world / (T x P x S), after checking the layout: every violated constraint is a
// UserError naming the flags (--tensor-model-parallel-size, --pipeline-model-parallel-size,
// --ds-sequence-parallel-size, --num-attention-heads, ...).
ParallelSizes make_parallel_sizes(int world, int tp, int pp, int sp, const LayoutDims& dims);

class Topology {
 public:
  Topology(ParallelSizes sizes, int rank);

  const ParallelSizes& sizes() const { return sizes_; }
  int rank() const { return rank_; }
  const GridCoords& coords() const { return coords_; }

  int rank_of(const GridCoords& c) const;
  GridCoords coords_of(int rank) const;

  int group_size(Group g) const;
  // This rank's index inside group g (the order of group_members).
  int group_rank(Group g) const;
  // The world ranks of this rank's group g, in group-rank order.
  std::vector<int> group_members(Group g) const;
  // A number shared by exactly the members of one group of kind g (the MPI_Comm_split colour).
  int group_color(Group g) const;

 private:
  ParallelSizes sizes_;
  int rank_;
  GridCoords coords_;
  GridCoords member(Group g, int index) const;  // the group's index-th member
};

// One communicator per group, split from the world; destroy before the world.
struct ProcessGroups {
  std::unique_ptr<Communicator> tp, sp, dp, pp, sdp;
  Communicator& get(Group g);
};
ProcessGroups make_groups(Communicator& world, const Topology& topology);

}  // namespace mds::dist
