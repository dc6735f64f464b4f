// The RMSNorm kernels that rmsnorm.cu launches (see there for what they compute): forward, plain
// or fused with the residual add, dx, and the two passes of the deterministic weight gradient.
// In a header so that tests/cuda_emu also runs their source, unmodified, on the CPU under its
// emulator of the CUDA execution model.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::rmsnorm_kernels {

constexpr int64_t kRowChunk = 64;  // rows per partial of the weight gradient

// y = norm(v) * w with v = x, or v = resid_out = T(x + r) when r is not null. A thread reads back
// only the resid_out elements it wrote itself (same j loop), so no block synchronisation is
// needed between the two loops, and resid_out may alias x or r.
template <typename T>
__global__ void rmsnorm_forward_kernel(T* y, T* resid_out, float* rstd, const T* x, const T* r,
                                       const T* w, int64_t h, float eps) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * h;
  const T* rr = r ? r + row * h : nullptr;
  T* sr = resid_out ? resid_out + row * h : nullptr;
  double ss = 0.0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    float v = to_float(xr[j]);
    if (rr) {
      const T sum = from_float<T>(v + to_float(rr[j]));
      sr[j] = sum;
      v = to_float(sum);  // the stored (rounded) value is the one normalised
    }
    ss += static_cast<double>(v) * v;
  }
  ss = block_sum(ss, scratch);
  const float rs = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(h) + eps));
  if (threadIdx.x == 0) rstd[row] = rs;
  const T* vr = rr ? sr : xr;
  T* yr = y + row * h;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x)
    yr[j] = from_float<T>(to_float(vr[j]) * rs * to_float(w[j]));
}

// dx = prior + r * w * dy - c * x per row (prior null: 0). prior may alias dx.
template <typename T>
__global__ void rmsnorm_backward_dx_kernel(T* dx, const T* prior, const T* dy, const T* x,
                                           const T* w, const float* rstd, int64_t h) {
  __shared__ double scratch[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * h;
  const T* dyr = dy + row * h;
  const float r = rstd[row];
  double dot = 0.0;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x)
    dot += static_cast<double>(to_float(dyr[j])) * to_float(w[j]) * to_float(xr[j]);
  dot = block_sum(dot, scratch);
  const float c = static_cast<float>(dot * r * r * r / static_cast<double>(h));
  T* dxr = dx + row * h;
  const T* pr = prior ? prior + row * h : nullptr;
  for (int64_t j = threadIdx.x; j < h; j += blockDim.x) {
    const float p = pr ? to_float(pr[j]) : 0.0f;
    dxr[j] = from_float<T>(p + (r * to_float(w[j]) * to_float(dyr[j]) - c * to_float(xr[j])));
  }
}

// partial[chunk, j] = sum over the chunk's rows, in order, of dy * x * rstd.
template <typename T>
__global__ void rmsnorm_backward_dw_partial_kernel(float* partial, const T* dy, const T* x,
                                                   const float* rstd, int64_t n, int64_t h) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= h) return;
  const int64_t i0 = blockIdx.y * kRowChunk, i1 = min(n, i0 + kRowChunk);
  float acc = 0.0f;
  for (int64_t i = i0; i < i1; ++i)
    acc += to_float(dy[i * h + j]) * to_float(x[i * h + j]) * rstd[i];
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

}  // namespace mds::ops::cuda::rmsnorm_kernels
