// The overflow check of dynamic loss scaling on the GPU: does an fp32 gradient buffer hold an inf
// or a NaN? (Megatron's DynamicGradScaler then skips the step and lowers the scale.)
//
// Each warp that finds one stores 1 into the flag. Concurrent stores of the same value leave the
// same result, so the answer never depends on timing and needs no atomics; the check is one read
// of the buffer, which is what a clean step (the common case) costs anyway.
#include <algorithm>

#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/non_finite.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using non_finite_kernels::non_finite_kernel;

constexpr int kThreads = 256;

}  // namespace

void any_non_finite_async(int32_t* flag, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  // A grid of a few waves, not one thread per element: each thread strides over many.
  constexpr int64_t kMaxBlocks = 4096;
  const unsigned blocks = std::min(blocks_for(n, kThreads), static_cast<unsigned>(kMaxBlocks));
  launch(non_finite_kernel, blocks, kThreads, 0, stream, flag, x, n);
}

bool any_non_finite(const float* x, int64_t n, cudaStream_t stream) {
  DeviceBuffer<int32_t> flag(1);
  MDS_CUDA_CHECK(cudaMemsetAsync(flag.data(), 0, sizeof(int32_t), stream));
  any_non_finite_async(flag.data(), x, n, stream);
  int32_t host = 0;
  MDS_CUDA_CHECK(cudaMemcpyAsync(&host, flag.data(), sizeof host, cudaMemcpyDeviceToHost, stream));
  MDS_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host != 0;
}

}  // namespace mds::ops::cuda
