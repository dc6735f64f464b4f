// Data-parallel gradient synchronisation: after the backward passes of a step, every rank of
// the sequence-data group (SP x DP) holds the gradient of its own micro-batches (or tokens);
// averaging the flat gradient buffer over the group gives each rank the gradient of the whole
// global batch. The buffer is reduced in buckets of bucket_elems elements (--ddp-bucket-size),
// which bounds the size of one message (and, on GPU, is the unit overlapped with backward).
#pragma once

#include <cstdint>

#include "mds/dist/communicator.h"
#include "mds/model/params.h"
#include "mds/ops/backend.h"

namespace mds::parallel {

// Averages grads [n] over `group` while backward still runs (Megatron's overlapped
// grad-reduce): backward finishes the gradients from the end of the buffer down (the head,
// the last layer, ..., the embedding: the table's order reversed), saying so with
// ready_from(begin); each time a bucket of bucket_elems final gradients is complete its
// all-reduce starts, and finish() starts the rest and waits for all. Every rank of the group
// holds the same shard, so every rank forms the same buckets in the same order. On a GPU the
// buckets run on the NCCL communication stream beside the backward kernels.
class GradientAverager {
 public:
  GradientAverager(dist::Communicator& group, float* grads, int64_t n, int64_t bucket_elems);
  // grads [begin, n) are final (begin only decreases).
  void ready_from(int64_t begin);
  void finish();  // everything is final: reduce the rest, wait for every bucket

 private:
  dist::Communicator& group_;
  float* grads_;
  int64_t bucket_, unreduced_end_;  // [0, unreduced_end_) not yet started
  bool active_;
};

// grads [n] <- the average of grads over `group`, bucket by bucket (bucket_elems > 0): the
// averager with every gradient final at once.
void average_gradients(dist::Communicator& group, float* grads, int64_t n, int64_t bucket_elems);

// The L2 norm of the whole model's gradient when the model is cut into tensor- and
// pipeline-parallel shards (Megatron's clip_grads): each rank sums the squares of its shard,
// counting a tensor replicated across TP ranks (the norms) on TP rank 0 only, and the sums
// are added over the TP group and then the PP group. Every rank gets the same norm. grads is
// in the memory of `backend`.
double sharded_grad_norm(const model::ParamTable& table, const float* grads, int tp_rank,
                         dist::Communicator& tp, dist::Communicator& pp,
                         ops::Backend& backend = ops::cpu_backend());

}  // namespace mds::parallel
