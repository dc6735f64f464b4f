// fp32 <-> 16-bit (bf16, fp16) conversion of whole buffers on the GPU: the 16-bit model weights
// from the fp32 master weights (round to nearest even, the bits of mds/core/bf16.h's and
// mds/core/fp16.h's host conversions; fp16 overflows to inf), and back (exact). Element-wise,
// grid-stride.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/convert.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using convert_kernels::convert_kernel;

constexpr int kThreads = 256;

template <typename To, typename From>
void convert(To* y, const From* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  launch(convert_kernel<To, From>, blocks_for(n, kThreads), kThreads, 0, stream, y, x, n);
}

}  // namespace

void to_half(bf16* y, const float* x, int64_t n, cudaStream_t stream) {
  convert(y, x, n, stream);
}

void to_half(fp16* y, const float* x, int64_t n, cudaStream_t stream) {
  convert(y, x, n, stream);
}

void to_fp32(float* y, const bf16* x, int64_t n, cudaStream_t stream) {
  convert(y, x, n, stream);
}

void to_fp32(float* y, const fp16* x, int64_t n, cudaStream_t stream) {
  convert(y, x, n, stream);
}

}  // namespace mds::ops::cuda
