// The RoPE kernel that rope.cu launches (see there for what it computes), forward and backward by
// the sign of the angle. In a header so that tests/cuda_emu also runs their source, unmodified, on
// the CPU under its emulator of the CUDA execution model.
#pragma once

#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::rope_kernels {

// A block per token row (grid-stride over rows), its threads over the row's heads x half pairs:
// one 32-bit division per pair instead of four 64-bit ones.
template <typename T>
__global__ void rope_kernel(T* x, const float* cos, const float* sin, int64_t rows, int64_t s,
                            int heads, int half, int64_t row_stride, int64_t pos0, float sign) {
  const int pairs = heads * half;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int64_t pos = pos0 + row % s;
    const float* cr = cos + pos * half;
    const float* sr = sin + pos * half;
    T* xr = x + row * row_stride;
    for (int e = threadIdx.x; e < pairs; e += blockDim.x) {
      const int hh = e / half, i = e - hh * half;
      const float c = cr[i], sn = sign * sr[i];
      T* xh = xr + hh * 2 * half;
      const float x1 = to_float(xh[i]), x2 = to_float(xh[i + half]);
      xh[i] = from_float<T>(x1 * c - x2 * sn);
      xh[i + half] = from_float<T>(x2 * c + x1 * sn);
    }
  }
}

}  // namespace mds::ops::cuda::rope_kernels
