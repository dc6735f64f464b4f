// RoPE on the GPU, rotate-half, in place, matching ops/cpu/rope.cpp: a block per token, a thread
// per rotated pair (x[i], x[i + hd/2]) of one of its heads; the same fp32 tables and the same
// arithmetic, so the results agree with the CPU's to rounding of the two products. 16-bit storage:
// the pair is rotated in fp32 and each element rounded once.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/cuda/rope.cuh"

namespace mds::ops::cuda {

namespace {

using rope_kernels::rope_kernel;

constexpr int kThreads = 256;

template <typename T>
void rotate(T* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
            int64_t hd, int64_t row_stride, int64_t pos0, float sign, cudaStream_t stream) {
  MDS_ASSERT(hd % 2 == 0, "rotary head dim must be even, got {}", hd);
  MDS_ASSERT(heads * hd < (int64_t{1} << 31), "rope over {} heads of {}", heads, hd);
  if (b * s * heads * hd == 0) return;
  launch(rope_kernel<T>, blocks_for(b * s, 1), kThreads, 0, stream, x, cos, sin, b * s, s,
         static_cast<int>(heads), static_cast<int>(hd / 2), row_stride, pos0, sign);
}

}  // namespace

void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream) {
  rotate(x, cos, sin, b, s, heads, hd, row_stride, pos0, 1.0f, stream);
}

// The transpose of a rotation is the rotation by the opposite angle.
void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0,
                   cudaStream_t stream) {
  rotate(dx, cos, sin, b, s, heads, hd, row_stride, pos0, -1.0f, stream);
}

void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream) {
  rotate(x, cos, sin, b, s, heads, hd, row_stride, pos0, 1.0f, stream);
}

void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0,
                   cudaStream_t stream) {
  rotate(dx, cos, sin, b, s, heads, hd, row_stride, pos0, -1.0f, stream);
}

void rope_forward(fp16* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream) {
  rotate(x, cos, sin, b, s, heads, hd, row_stride, pos0, 1.0f, stream);
}

void rope_backward(fp16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0,
                   cudaStream_t stream) {
  rotate(dx, cos, sin, b, s, heads, hd, row_stride, pos0, -1.0f, stream);
}

}  // namespace mds::ops::cuda
