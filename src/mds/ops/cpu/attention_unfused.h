// The unfused attention of the CPU (--attention-backend unfused): ops.h's attention_forward /
// attention_backward contract (layouts, strides, lse [b, nq, s]), computed row by row without
// tiling. attention_forward / attention_backward call these when the setting says unfused.
#pragma once

#include <cstdint>

namespace mds::ops {

void attention_forward_unfused(float* out, float* lse, const float* q, const float* k,
                               const float* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                               int64_t hd, int64_t qkv_stride, int64_t out_stride);
void attention_backward_unfused(float* dq, float* dk, float* dv, const float* dout,
                                const float* out, const float* lse, const float* q, const float* k,
                                const float* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                                int64_t hd, int64_t qkv_stride, int64_t out_stride);

}  // namespace mds::ops
