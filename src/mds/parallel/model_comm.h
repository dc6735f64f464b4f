// The communication a model shard needs from the parallel layout, and nothing more: its
// tensor-parallel group (Megatron's all-reduce after the row-parallel projections, the
// vocab-parallel embedding and cross entropy) and its sequence-parallel group (the Ulysses
// all-to-all around attention). A null group is a group of one, where every call is free, so
// one model code runs on one rank and on many.
#pragma once

#include <cstdint>

#include "mds/dist/communicator.h"

namespace mds::parallel {

struct ModelComm {
  dist::Communicator* tp = nullptr;
  dist::Communicator* sp = nullptr;

  int tp_size() const { return tp ? tp->size() : 1; }
  int tp_rank() const { return tp ? tp->rank() : 0; }
  int sp_size() const { return sp ? sp->size() : 1; }
  int sp_rank() const { return sp ? sp->rank() : 0; }

  // x [n] <- the reduction of x over the tensor-parallel group.
  template <typename T>
  void tp_all_reduce(T* x, int64_t n, dist::ReduceOp op = dist::ReduceOp::sum) const {
    if (tp_size() > 1) tp->all_reduce(x, n, op);
  }
};

}  // namespace mds::parallel
