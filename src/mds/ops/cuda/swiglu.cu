// SwiGLU on the GPU, matching ops/cpu/swiglu.cpp: gu [n, 2f] = [gate | up] -> h = silu(gate) * up.
// A block per row, a thread per column; expf (full precision) where the CPU uses its fast_exp, so
// the two agree to a few ulp, not bit for bit. 16-bit storage: fp32 arithmetic, each output rounded
// once.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/cuda/swiglu.cuh"

namespace mds::ops::cuda {

namespace {

using swiglu_kernels::swiglu_backward_kernel;
using swiglu_kernels::swiglu_forward_kernel;

constexpr int kThreads = 256;

template <typename T>
void forward(T* h, const T* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  launch(swiglu_forward_kernel<T>, blocks_for(n, 1), kThreads, 0, stream, h, gu, n, f);
}

template <typename T>
void backward(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  launch(swiglu_backward_kernel<T>, blocks_for(n, 1), kThreads, 0, stream, dgu, dh, gu, n, f);
}

}  // namespace

void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f, cudaStream_t stream) {
  forward(h, gu, n, f, stream);
}

void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n, int64_t f,
                     cudaStream_t stream) {
  backward(dgu, dh, gu, n, f, stream);
}

void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f, cudaStream_t stream) {
  forward(h, gu, n, f, stream);
}

void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n, int64_t f,
                     cudaStream_t stream) {
  backward(dgu, dh, gu, n, f, stream);
}

void swiglu_forward(fp16* h, const fp16* gu, int64_t n, int64_t f, cudaStream_t stream) {
  forward(h, gu, n, f, stream);
}

void swiglu_backward(fp16* dgu, const fp16* dh, const fp16* gu, int64_t n, int64_t f,
                     cudaStream_t stream) {
  backward(dgu, dh, gu, n, f, stream);
}

}  // namespace mds::ops::cuda
