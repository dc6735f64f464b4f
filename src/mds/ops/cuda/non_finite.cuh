// The non-finite check kernel that non_finite.cu launches (see there for what it computes).
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::non_finite_kernels {

__global__ void non_finite_kernel(int32_t* flag, const float* x, int64_t n) {
  bool found = false;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    found |= !isfinite(x[i]);
  // One store per warp that found one, not one per element.
  if (__any_sync(0xffffffffu, found) && (threadIdx.x & 31) == 0) *flag = 1;
}

}  // namespace mds::ops::cuda::non_finite_kernels
