// RMSNorm on the GPU, matching ops/cpu/rmsnorm.cpp: one block per row, the row's sum of squares
// and the backward's dot product accumulated in double (so rstd is the fp32 rounding of the same
// value the CPU computes). The weight gradient is deterministic without atomics: rows are cut into
// fixed chunks, each chunk's column sums go to a scratch [chunks, h], and a second kernel adds
// the chunks in order.
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kRowChunk = 64;  // rows per partial of the weight gradient

__global__ void rmsnorm_forward_kernel(float* y, float* rstd, const float* x, const float* w,
                                       int64_t h, float eps) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * h;
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) ss += static_cast<double>(xr[j]) * xr[j];
  ss = block_sum(ss, scratch);
  const float r = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(h) + eps));
  if (threadIdx.x == 0) rstd[row] = r;
  float* yr = y + row * h;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) yr[j] = xr[j] * r * w[j];
}

__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dy, const float* x,
                                           const float* w, const float* rstd, int64_t h) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * h;
  const float* dyr = dy + row * h;
  const float r = rstd[row];
  double dot = 0.0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x)
    dot += static_cast<double>(dyr[j]) * w[j] * xr[j];
  dot = block_sum(dot, scratch);
  const float c = static_cast<float>(dot * r * r * r / static_cast<double>(h));
  float* dxr = dx + row * h;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) dxr[j] += r * w[j] * dyr[j] - c * xr[j];
}

// partial[chunk, j] = sum over the chunk's rows, in order, of dy * x * rstd.
__global__ void rmsnorm_backward_dw_partial_kernel(float* partial, const float* dy, const float* x,
                                                   const float* rstd, int64_t n, int64_t h) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= h) return;
  const int64_t i0 = blockIdx.y * kRowChunk, i1 = min(n, i0 + kRowChunk);
  float acc = 0.0f;
  for (int64_t i = i0; i < i1; ++i) acc += dy[i * h + j] * x[i * h + j] * rstd[i];
  partial[blockIdx.y * h + j] = acc;
}

__global__ void rmsnorm_backward_dw_reduce_kernel(float* dw, const float* partial, int64_t chunks,
                                                  int64_t h) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= h) return;
  float acc = 0.0f;
  for (int64_t c = 0; c < chunks; ++c) acc += partial[c * h + j];
  dw[j] += acc;
}

}  // namespace

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream) {
  if (n == 0) return;
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(y, rstd, x, w, h, eps);
  MDS_CUDA_LAUNCH_CHECK();
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream) {
  if (n == 0) return;
  rmsnorm_backward_dx_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(dx, dy, x, w, rstd,
                                                                                h);
  MDS_CUDA_LAUNCH_CHECK();
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  MDS_ASSERT(chunks <= 65535, "rmsnorm_backward: {} rows exceed the grid's y limit", n);
  // Freed when this returns: the allocator may hand it out again, which is safe for work
  // enqueued on the same stream (allocator.h).
  DeviceBuffer<float> partial(static_cast<size_t>(chunks * h));
  const dim3 grid(blocks_for(h, kThreads), static_cast<unsigned>(chunks));
  rmsnorm_backward_dw_partial_kernel<<<grid, kThreads, 0, stream>>>(partial.data(), dy, x, rstd, n,
                                                                    h);
  MDS_CUDA_LAUNCH_CHECK();
  rmsnorm_backward_dw_reduce_kernel<<<blocks_for(h, kThreads), kThreads, 0, stream>>>(
      dw, partial.data(), chunks, h);
  MDS_CUDA_LAUNCH_CHECK();
}

}  // namespace mds::ops::cuda
