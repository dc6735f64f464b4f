// SwiGLU on the GPU, matching ops/cpu/swiglu.cpp: gu [n, 2f] = [gate | up] -> h = silu(gate) * up.
// One thread per output element; expf (full precision) where the CPU uses its fast_exp, so the
// two agree to a few ulp, not bit for bit. 16-bit storage: fp32 arithmetic, each output rounded
// once.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void swiglu_forward_kernel(T* h, const T* gu, int64_t n, int64_t f) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n * f;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / f, j = t % f;
    const float g = to_float(gu[i * 2 * f + j]), u = to_float(gu[i * 2 * f + f + j]);
    h[t] = from_float<T>(g / (1.0f + expf(-g)) * u);
  }
}

// silu'(g) = sig(g) * (1 + g * (1 - sig(g))). Reads gate and up before writing: dgu may alias gu.
template <typename T>
__global__ void swiglu_backward_kernel(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f) {
  for (int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; t < n * f;
       t += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = t / f, j = t % f;
    const float g = to_float(gu[i * 2 * f + j]), u = to_float(gu[i * 2 * f + f + j]);
    const float d = to_float(dh[t]);
    const float sig = 1.0f / (1.0f + expf(-g));
    dgu[i * 2 * f + j] = from_float<T>(d * u * sig * (1.0f + g * (1.0f - sig)));
    dgu[i * 2 * f + f + j] = from_float<T>(d * g * sig);
  }
}

template <typename T>
void forward(T* h, const T* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_forward_kernel<T><<<blocks_for(n * f, kThreads), kThreads, 0, stream>>>(h, gu, n, f);
  MDS_CUDA_LAUNCH_CHECK();
}

template <typename T>
void backward(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_backward_kernel<T>
      <<<blocks_for(n * f, kThreads), kThreads, 0, stream>>>(dgu, dh, gu, n, f);
  MDS_CUDA_LAUNCH_CHECK();
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
