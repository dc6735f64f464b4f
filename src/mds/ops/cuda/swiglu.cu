// SwiGLU on the GPU, matching ops/cpu/swiglu.cpp: gu [n, 2f] = [gate | up] -> h = silu(gate) * up.
// A block per row, a thread per column; expf (full precision) where the CPU uses its fast_exp, so
// the two agree to a few ulp, not bit for bit. 16-bit storage: fp32 arithmetic, each output rounded
// once.
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;

// A block per row (grid-stride over rows), its threads over the row's f columns: no 64-bit
// division per element to find the row, which would cost more than the memory traffic.
template <typename T>
__global__ void swiglu_forward_kernel(T* h, const T* gu, int64_t n, int64_t f) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T* gate = gu + i * 2 * f;
    const T* up = gate + f;
    T* hi = h + i * f;
    for (int64_t j = threadIdx.x; j < f; j += blockDim.x) {
      const float g = to_float(gate[j]), u = to_float(up[j]);
      hi[j] = from_float<T>(g / (1.0f + expf(-g)) * u);
    }
  }
}

// silu'(g) = sig(g) * (1 + g * (1 - sig(g))). Reads gate and up before writing: dgu may alias gu.
template <typename T>
__global__ void swiglu_backward_kernel(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const T* gate = gu + i * 2 * f;
    const T* up = gate + f;
    const T* dhi = dh + i * f;
    T* dgate = dgu + i * 2 * f;
    T* dup = dgate + f;
    for (int64_t j = threadIdx.x; j < f; j += blockDim.x) {
      const float g = to_float(gate[j]), u = to_float(up[j]);
      const float d = to_float(dhi[j]);
      const float sig = 1.0f / (1.0f + expf(-g));
      dgate[j] = from_float<T>(d * u * sig * (1.0f + g * (1.0f - sig)));
      dup[j] = from_float<T>(d * g * sig);
    }
  }
}

template <typename T>
void forward(T* h, const T* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_forward_kernel<T><<<blocks_for(n, 1), kThreads, 0, stream>>>(h, gu, n, f);
  MDS_CUDA_LAUNCH_CHECK();
}

template <typename T>
void backward(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f, cudaStream_t stream) {
  if (n * f == 0) return;
  swiglu_backward_kernel<T><<<blocks_for(n, 1), kThreads, 0, stream>>>(dgu, dh, gu, n, f);
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
