// Data-parallel gradient synchronisation: after the backward passes of a step, every rank of
// the sequence-data group (SP x DP) holds the gradient of its own micro-batches (or tokens);
// averaging the flat gradient buffer over the group gives each rank the gradient of the whole
// global batch. The buffer is reduced in buckets of bucket_elems elements (--ddp-bucket-size),
// which bounds the size of one message (and, on GPU, is the unit overlapped with backward).
#pragma once

#include <cstdint>

#include "mds/dist/communicator.h"

namespace mds::parallel {

// grads [n] <- the average of grads over `group`, bucket by bucket (bucket_elems > 0).
void average_gradients(dist::Communicator& group, float* grads, int64_t n, int64_t bucket_elems);

}  // namespace mds::parallel
