// The unfused attention kernels (attention_unfused.cu), for T = float, __nv_bfloat16, __half:
// ops_cuda.h's attention contract. The entry points of attention.cu call them when
// ops::attention_backend() is unfused.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace mds::ops::cuda {

template <typename T>
void attention_forward_unfused(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                               int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                               int64_t out_stride, cudaStream_t stream);
template <typename T>
void attention_backward_unfused(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse,
                                const T* q, const T* k, const T* v, int64_t b, int64_t s,
                                int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                                int64_t out_stride, cudaStream_t stream);

}  // namespace mds::ops::cuda
