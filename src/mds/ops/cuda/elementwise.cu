// Element-wise kernels (fp32; the add also on 16-bit storage) and the sum of squares
// (gradient-norm clipping) on the GPU.
// sum_squares is deterministic: blocks own fixed chunks of 2^14 elements and sum them in double
// through a fixed tree, then one block adds the chunk sums, again through a fixed tree. The
// result equals the CPU's up to the order of double additions (~1e-16 relative).
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/elementwise.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using elementwise_kernels::add_inplace_kernel;
using elementwise_kernels::add_kernel;
using elementwise_kernels::kChunk;
using elementwise_kernels::scale_inplace_kernel;
using elementwise_kernels::sum_partials_kernel;
using elementwise_kernels::sum_squares_chunks_kernel;

constexpr int kThreads = 256;

}  // namespace

void add(float* y, const float* a, const float* b, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(add_kernel, blocks_for(n, kThreads), kThreads, 0, stream, y, a, b, n);
}

void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(add_inplace_kernel<float>, blocks_for(n, kThreads), kThreads, 0, stream, y, x, n);
}

// 16-bit: the sum in fp32, rounded once.
void add_inplace(bf16* y, const bf16* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(add_inplace_kernel<bf16>, blocks_for(n, kThreads), kThreads, 0, stream, y, x, n);
}

void add_inplace(fp16* y, const fp16* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(add_inplace_kernel<fp16>, blocks_for(n, kThreads), kThreads, 0, stream, y, x, n);
}

void scale_inplace(float* y, float alpha, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(scale_inplace_kernel, blocks_for(n, kThreads), kThreads, 0, stream, y, alpha, n);
}

void sum_squares_async(double* out, const float* x, int64_t n, cudaStream_t stream) {
  const int64_t chunks = n == 0 ? 1 : (n + kChunk - 1) / kChunk;
  DeviceBuffer<double> partial(static_cast<size_t>(chunks));  // reuse is stream-ordered
  launch(sum_squares_chunks_kernel, static_cast<unsigned>(chunks), kThreads, 0, stream,
         partial.data(), x, n);
  launch(sum_partials_kernel, 1, 1024, 0, stream, out, partial.data(), chunks);
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
