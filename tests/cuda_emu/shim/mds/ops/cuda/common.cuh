// Stand-in for src/mds/ops/cuda/common.cuh under the emulator (../../../../emu.h): CUDA's 16-bit
// types are the host's mds::bf16 and mds::fp16 (core/bf16.h, core/fp16.h: the same bits as
// CUDA's round-to-nearest-even conversions), with common.cuh's to_float / from_float,
// dynamic_smem, and its warp and block reductions, copied here token for token (the same shuffles,
// barriers and tree, so the same sums in the same order). Not the grid sizing or the launch check:
// host code. The device math the kernels call (expf, sqrt, fmaxf, isfinite, INFINITY) is the host's
// libm.
#pragma once

#include <math.h>  // the global ::isfinite, as CUDA's device code has it

#include <cmath>
#include <cstdint>

#include "emu.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

using __nv_bfloat16 = mds::bf16;
using __half = mds::fp16;

namespace mds::ops::cuda {

inline float to_float(float x) {
  return x;
}
inline float to_float(__nv_bfloat16 x) {
  return static_cast<float>(x);
}
inline float to_float(__half x) {
  return static_cast<float>(x);
}
template <typename T>
T from_float(float x) {
  return T(x);
}

// The block's dynamic shared memory: emu.h's poisoned, race-checked buffer.
inline unsigned char* dynamic_smem() {
  return emu::block().smem;
}

template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
// `scratch` is 32 elements of shared memory; the call synchronises the block twice.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : T(0);
  return warp_sum(v);
}

__device__ inline float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : -INFINITY;
  return warp_max(v);
}

}  // namespace mds::ops::cuda
