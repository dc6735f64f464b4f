// The first pass of both flash-attention backwards (attention.cu on CUDA cores,
// attention_tc.cu on tensor cores): D[b, nq, s] = dout_row . out_row in fp32, the row term of
// dS = P (dP - D). The launch is for nvcc only, so that tests/cuda_emu compiles the kernel with
// g++.
#pragma once

#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda {
namespace attention_detail {

// One warp per (batch, position, head), grid-stride.
template <typename T>
__global__ void attention_backward_d_kernel(float* D, const T* dout, const T* out, int64_t b,
                                            int64_t s, int nq, int hd, int64_t out_stride) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  const int64_t rows = b * s * nq;
  for (int64_t w = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5);
       w < rows; w += warps) {
    const int64_t h = w % nq, pos = w / nq;  // pos = bi * s + i
    const T* o = out + pos * out_stride + h * hd;
    const T* g = dout + pos * out_stride + h * hd;
    float acc = 0.0f;
    for (int d = lane; d < hd; d += 32) acc = fmaf(to_float(o[d]), to_float(g[d]), acc);
    acc = warp_sum(acc);
    const int64_t bi = pos / s, i = pos - bi * s;
    if (lane == 0) D[(bi * nq + h) * s + i] = acc;
  }
}

// Enqueues the pass on `stream`: D must hold b * nq * s floats.
template <typename T>
void attention_backward_d(float* D, const T* dout, const T* out, int64_t b, int64_t s, int64_t nq,
                          int64_t hd, int64_t out_stride, cudaStream_t stream) {
  constexpr int kDThreads = 256;
  launch(attention_backward_d_kernel<T>, blocks_for(b * s * nq, kDThreads / 32), kDThreads, 0,
         stream, D, dout, out, b, s, static_cast<int>(nq), static_cast<int>(hd), out_stride);
}

}  // namespace attention_detail
}  // namespace mds::ops::cuda
