// SwiGLU on the GPU, matching ops/cpu/swiglu.cpp: gu [n, 2f] = [gate | up] -> h = silu(gate) * up.
// One thread per output element; expf (full precision) where the CPU uses its fast_exp, so the
// two agree to a few ulp, not bit for bit.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void swiglu_forward_kernel(float* h, const float* gu, int64_t n, int64_t f) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n * f;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / f, j = t % f;
    const float g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
    h[t] = g / (1.0f + expf(-g)) * u;
  }
}

// silu'(g) = sig(g) * (1 + g * (1 - sig(g))). Reads gate and up before writing: dgu may alias gu.
__global__ void swiglu_backward_kernel(float* dgu, const float* dh, const float* gu, int64_t n,
                                       int64_t f) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n * f;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / f, j = t % f;
    const float g = gu[i * 2 * f + j], u = gu[i * 2 * f + f + j];
    const float sig = 1.0f / (1.0f + expf(-g));
    dgu[i * 2 * f + j] = dh[t] * u * sig * (1.0f + g * (1.0f - sig));
    dgu[i * 2 * f + f + j] = dh[t] * g * sig;
  }
}

}  // namespace

void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_forward_kernel<<<blocks_for(n * f, kThreads), kThreads, 0, stream>>>(h, gu, n, f);
  MDS_CUDA_LAUNCH_CHECK();
}

void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n, int64_t f,
                     cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_backward_kernel<<<blocks_for(n * f, kThreads), kThreads, 0, stream>>>(dgu, dh, gu, n, f);
  MDS_CUDA_LAUNCH_CHECK();
}

}  // namespace mds::ops::cuda
