// Helpers shared by the CUDA kernels: grid sizing, the launch, fp32 <-> storage-type
// conversion, the dynamic shared memory, and (reductions.cuh) the warp and block reductions.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "mds/core/cuda_check.h"
#include "mds/ops/cuda/grid.h"
#include "mds/ops/cuda/reductions.cuh"

namespace mds::ops::cuda {

// kernel<<<grid, threads, smem_bytes, stream>>>(args...), opting in to more than 48 KiB of
// dynamic shared memory first, and checked at once: an invalid configuration is reported here,
// not at the next sync. Every launch goes through here, so that the CPU emulator
// (tests/cuda_emu/shim) can stand in for it and run the backend's host code as well.
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, unsigned threads, size_t smem_bytes,
            cudaStream_t stream, Args&&... args) {
  allow_smem(kernel, smem_bytes);
  kernel<<<grid, threads, smem_bytes, stream>>>(std::forward<Args>(args)...);
  MDS_CUDA_CHECK(cudaGetLastError());
}

// Storage types: kernels templated on T (float, __nv_bfloat16 or __half) load through to_float and
// store through from_float<T>, so the arithmetic is fp32 whatever the buffers hold and a 16-bit
// output is rounded once, to nearest even. In fp16 a value beyond +-65504 rounds to inf, never
// clamped: the inf is what the dynamic loss scaler looks for.
__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(__nv_bfloat16 x) {
  return __bfloat162float(x);
}
__device__ __forceinline__ float to_float(__half x) {
  return __half2float(x);
}
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {
  return __float2half_rn(x);
}

// The block's dynamic shared memory (the launch's third argument), 128-byte aligned. Kernels
// reach it only through here, so that the CPU emulator (tests/cuda_emu) can stand in for it.
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(128) unsigned char dynamic_smem_bytes[];
  return dynamic_smem_bytes;
}

}  // namespace mds::ops::cuda
