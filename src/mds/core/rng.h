// Counter-based random numbers for weight initialisation.
//
// Element i of a tensor depends only on (seed, stream, i): a tensor can be initialised in any
// slice, by any rank, in any order, and the full tensor is always the same. This is what makes
// every parallel layout start from the single-rank model's weights.
#pragma once

#include <cstdint>
#include <string_view>

namespace mds {

// A stable 64-bit id for a name (FNV-1a), used as the stream of a named tensor.
uint64_t stream_id(std::string_view name);

// x[j] = std * N(0,1) sample number (first + j) of stream (seed, stream), j in [0, n).
void fill_normal(float* x, int64_t n, float std, uint64_t seed, uint64_t stream, int64_t first = 0);

}  // namespace mds
