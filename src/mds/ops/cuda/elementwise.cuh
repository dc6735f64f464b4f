// The element-wise and sum-of-squares kernels that elementwise.cu launches (see there for what
// they compute).
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::elementwise_kernels {

constexpr int64_t kChunk = 1 << 14;

#define MDS_GRID_STRIDE(i, n)                                                            \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)

__global__ void add_kernel(float* y, const float* a, const float* b, int64_t n) {
  MDS_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}
template <typename T>
__global__ void add_inplace_kernel(T* y, const T* x, int64_t n) {
  MDS_GRID_STRIDE(i, n) y[i] = from_float<T>(to_float(y[i]) + to_float(x[i]));
}
__global__ void scale_inplace_kernel(float* y, float alpha, int64_t n) {
  MDS_GRID_STRIDE(i, n) y[i] *= alpha;
}

__global__ void sum_squares_chunks_kernel(double* partial, const float* x, int64_t n) {
  __shared__ double scratch[32];
  const int64_t i0 = blockIdx.x * kChunk, i1 = min(n, i0 + kChunk);
  double acc = 0.0;
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x)
    acc += static_cast<double>(x[i]) * x[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void sum_partials_kernel(double* out, const double* partial, int64_t count) {
  __shared__ double scratch[32];
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, scratch);
  if (threadIdx.x == 0) *out = acc;
}

}  // namespace mds::ops::cuda::elementwise_kernels
