#include "mds/parallel/grad_sync.h"

#include <algorithm>

#include "mds/core/error.h"

namespace mds::parallel {

void average_gradients(dist::Communicator& group, float* grads, int64_t n, int64_t bucket_elems) {
  MDS_ASSERT(bucket_elems > 0, "bucket size {} must be positive", bucket_elems);
  if (group.size() == 1) return;
  for (int64_t first = 0; first < n; first += bucket_elems)
    group.all_reduce(grads + first, std::min(bucket_elems, n - first), dist::ReduceOp::avg);
}

}  // namespace mds::parallel
