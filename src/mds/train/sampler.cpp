#include "mds/train/sampler.h"

#include "mds/core/error.h"

namespace mds::train {

int64_t megatron_sample_offset(int64_t k, int64_t micro, int64_t dp_size, int64_t dp_rank) {
  MDS_ASSERT(k >= 0 && micro > 0 && dp_size > 0 && dp_rank >= 0 && dp_rank < dp_size,
             "micro-batch {} of size {} on data-parallel rank {} of {}", k, micro, dp_rank,
             dp_size);
  return (k * dp_size + dp_rank) * micro;
}

}  // namespace mds::train
