// Element-wise kernels (fp32; the add also on 16-bit storage) and the sum of squares
// (gradient-norm clipping) on the GPU.
// sum_squares is deterministic: blocks own fixed chunks of 2^14 elements and sum them in double
// through a fixed tree, then one block adds the chunk sums, again through a fixed tree. The
// result equals the CPU's up to the order of double additions (~1e-16 relative).
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;
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

}  // namespace

void add(float* y, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(y, a, b, n);
  MDS_CUDA_LAUNCH_CHECK();
}

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_inplace_kernel<float><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  MDS_CUDA_LAUNCH_CHECK();
}

// 16-bit: the sum in fp32, rounded once.
void add_inplace(bf16* y, const bf16* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_inplace_kernel<bf16><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  MDS_CUDA_LAUNCH_CHECK();
}

void add_inplace(fp16* y, const fp16* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  add_inplace_kernel<fp16><<<blocks_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  MDS_CUDA_LAUNCH_CHECK();
}

void scale_inplace(float* y, float alpha, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  scale_inplace_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream>>>(y, alpha, n);
  MDS_CUDA_LAUNCH_CHECK();
}

void sum_squares_async(double* out, const float* x, int64_t n, cudaStream_t stream) {
  const int64_t chunks = n == 0 ? 1 : (n + kChunk - 1) / kChunk;
  DeviceBuffer<double> partial(static_cast<size_t>(chunks));  // reuse is stream-ordered
  sum_squares_chunks_kernel<<<static_cast<unsigned>(chunks), kThreads, 0, stream>>>(partial.data(),
                                                                                    x, n);
  MDS_CUDA_LAUNCH_CHECK();
  sum_partials_kernel<<<1, 1024, 0, stream>>>(out, partial.data(), chunks);
  MDS_CUDA_LAUNCH_CHECK();
}

double sum_squares(const float* x, int64_t n, cudaStream_t stream) {
  DeviceBuffer<double> out(1);
  sum_squares_async(out.data(), x, n, stream);
  double host = 0.0;
  MDS_CUDA_CHECK(
      cudaMemcpyAsync(&host, out.data(), sizeof(double), cudaMemcpyDeviceToHost, stream));
  MDS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host;
}

}  // namespace mds::ops::cuda
