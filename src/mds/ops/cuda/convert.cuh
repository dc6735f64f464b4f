// The conversion kernel that convert.cu launches (see there for what it computes).
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::convert_kernels {

template <typename To, typename From>
__global__ void convert_kernel(To* y, const From* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_float<To>(to_float(x[i]));
}

}  // namespace mds::ops::cuda::convert_kernels
