#include "mds/parallel/grad_sync.h"

#include <algorithm>
#include <cmath>

#include "mds/core/error.h"

namespace mds::parallel {

GradientAverager::GradientAverager(dist::Communicator& group, float* grads, int64_t n,
                                   int64_t bucket_elems)
    : group_(group),
      grads_(grads),
      bucket_(bucket_elems),
      unreduced_end_(n),
      active_(group.size() > 1) {
  MDS_ASSERT(bucket_elems > 0, "bucket size {} must be positive", bucket_elems);
}

void GradientAverager::ready_from(int64_t begin) {
  if (!active_) return;
  while (unreduced_end_ - begin >= bucket_) {
    unreduced_end_ -= bucket_;
    group_.start_all_reduce(grads_ + unreduced_end_, bucket_, dist::ReduceOp::avg);
  }
}

void GradientAverager::finish() {
  if (!active_) return;
  if (unreduced_end_ > 0) group_.start_all_reduce(grads_, unreduced_end_, dist::ReduceOp::avg);
  unreduced_end_ = 0;
  group_.wait_all();
}

void average_gradients(dist::Communicator& group, float* grads, int64_t n, int64_t bucket_elems) {
  GradientAverager averager(group, grads, n, bucket_elems);
  averager.ready_from(0);
  averager.finish();
}

double sharded_grad_norm(const model::ParamTable& table, const float* grads, int tp_rank,
                         dist::Communicator& tp, dist::Communicator& pp, ops::Backend& backend) {
  // One sum of squares per run of adjacent counted tensors (the whole buffer without TP), not
  // one per tensor: on a GPU each is a kernel and a synchronisation.
  double sum = 0;
  int64_t run_begin = 0, run_end = 0;
  auto flush = [&] {
    if (run_end > run_begin) sum += backend.sum_squares(grads + run_begin, run_end - run_begin);
    run_begin = run_end = 0;
  };
  for (const model::ParamInfo& p : table.params()) {
    if (p.split == model::TPSplit::replicated && tp_rank != 0) {
      flush();
      continue;
    }
    if (run_end != p.offset) {
      flush();
      run_begin = p.offset;
    }
    run_end = p.offset + p.numel;
  }
  flush();
  if (tp.size() > 1) tp.all_reduce(&sum, 1, dist::ReduceOp::sum);
  if (pp.size() > 1) pp.all_reduce(&sum, 1, dist::ReduceOp::sum);
  return std::sqrt(sum);
}

}  // namespace mds::parallel
