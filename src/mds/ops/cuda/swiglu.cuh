// The SwiGLU kernels that swiglu.cu launches (see there for what they compute): forward and
// backward. In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under
// its emulator of the CUDA execution model.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::swiglu_kernels {

// A block per row (grid-stride over rows), its threads over the row's f columns: no 64-bit
// division per element to find the row, which would cost more than the memory traffic.
template <typename T>
__global__ void swiglu_forward_kernel(T* h, const T* gu, int64_t n, int64_t f) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T* gate = gu + i * 2 * f;
    const T* up = gate + f;
    T* hi = h + i * f;
    for (int64_t j = threadIdx.x; j < f; j += blockDim.x) {
      const float g = to_float(gate[j]), u = to_float(up[j]);
      hi[j] = from_float<T>(g / (1.0f + expf(-g)) * u);
    }
  }
}

// silu'(g) = sig(g) * (1 + g * (1 - sig(g))). Reads gate and up before writing: dgu may alias gu.
template <typename T>
__global__ void swiglu_backward_kernel(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T* gate = gu + i * 2 * f;
    const T* up = gate + f;
    const T* dhi = dh + i * f;
    T* dgate = dgu + i * 2 * f;
    T* dup = dgate + f;
    for (int64_t j = threadIdx.x; j < f; j += blockDim.x) {
      const float g = to_float(gate[j]), u = to_float(up[j]);
      const float d = to_float(dhi[j]);
      const float sig = 1.0f / (1.0f + expf(-g));
      dgate[j] = from_float<T>(d * u * sig * (1.0f + g * (1.0f - sig)));
      dup[j] = from_float<T>(d * g * sig);
    }
  }
}

}  // namespace mds::ops::cuda::swiglu_kernels
