// The check of the cross entropy's targets, on the host where the batch is.
//
// Targets come from data files: a token id outside the vocabulary is the user's mistake (the data
// was tokenized for a larger vocabulary), reported as one mds::UserError naming the first bad
// position. The CPU's cross-entropy kernels call it on every call; the model's head calls it
// once per micro-batch before copying the targets to the backend, so that a GPU never stops to
// check them (the CUDA kernels read a target outside the vocabulary as no target).
#pragma once

#include <cstdint>

namespace mds::ops {

// Throws mds::UserError unless every targets[i] (i < n) is in [0, vocab).
void check_targets(const int32_t* targets, int64_t n, int64_t vocab);

}  // namespace mds::ops
