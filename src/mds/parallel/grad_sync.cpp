#include "mds/parallel/grad_sync.h"

#include <algorithm>
#include <cmath>

#include "mds/core/error.h"

namespace mds::parallel {

void average_gradients(dist::Communicator& group, float* grads, int64_t n, int64_t bucket_elems) {
  MDS_ASSERT(bucket_elems > 0, "bucket size {} must be positive", bucket_elems);
  if (group.size() == 1) return;
  for (int64_t first = 0; first < n; first += bucket_elems)
    group.all_reduce(grads + first, std::min(bucket_elems, n - first), dist::ReduceOp::avg);
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
