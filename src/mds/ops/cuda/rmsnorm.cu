// RMSNorm on the GPU, matching ops/cpu/rmsnorm.cpp, and its fusion with the residual add before
// it; fp32, bf16 or fp16 storage (T), fp32 arithmetic. One block per row, the row's sum of
// squares and the backward's dot product accumulated in double (so rstd is the fp32 rounding of
// the same value the CPU computes). The weight gradient is fp32 and deterministic without atomics:
// rows are cut into fixed chunks, each chunk's column sums go to a scratch [chunks, h], and a
// second kernel adds the chunks in order.
//
// The fused forward writes resid_out = x + r and normalises it in the same pass; its backward is
// the plain backward with the incoming residual gradient as the prior of dx, so both are the
// same kernels with an optional second input.
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

constexpr int kThreads = 256;
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

template <typename T>
void forward(T* y, T* resid_out, float* rstd, const T* x, const T* r, const T* w, int64_t n,
             int64_t h, float eps, cudaStream_t stream) {
  if (n == 0) return;
  rmsnorm_forward_kernel<T>
      <<<static_cast<unsigned>(n), kThreads, 0, stream>>>(y, resid_out, rstd, x, r, w, h, eps);
  MDS_CUDA_LAUNCH_CHECK();
}

template <typename T>
void backward(T* dx, const T* prior, float* dw, const T* dy, const T* x, const T* w,
              const float* rstd, int64_t n, int64_t h, cudaStream_t stream) {
  if (n == 0) return;
  rmsnorm_backward_dx_kernel<T>
      <<<static_cast<unsigned>(n), kThreads, 0, stream>>>(dx, prior, dy, x, w, rstd, h);
  MDS_CUDA_LAUNCH_CHECK();
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  MDS_ASSERT(chunks <= 65535, "rmsnorm_backward: {} rows exceed the grid's y limit", n);
  // Freed when this returns: the allocator may hand it out again, which is safe for work
  // enqueued on the same stream (allocator.h).
  DeviceBuffer<float> partial(static_cast<size_t>(chunks * h));
  const dim3 grid(blocks_for(h, kThreads), static_cast<unsigned>(chunks));
  rmsnorm_backward_dw_partial_kernel<T>
      <<<grid, kThreads, 0, stream>>>(partial.data(), dy, x, rstd, n, h);
  MDS_CUDA_LAUNCH_CHECK();
  rmsnorm_backward_dw_reduce_kernel<<<blocks_for(h, kThreads), kThreads, 0, stream>>>(
      dw, partial.data(), chunks, h);
  MDS_CUDA_LAUNCH_CHECK();
}

}  // namespace

void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream) {
  forward<float>(y, nullptr, rstd, x, nullptr, w, n, h, eps, stream);
}

void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream) {
  forward<bf16>(y, nullptr, rstd, x, nullptr, w, n, h, eps, stream);
}

void rmsnorm_forward(fp16* y, float* rstd, const fp16* x, const fp16* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream) {
  forward<fp16>(y, nullptr, rstd, x, nullptr, w, n, h, eps, stream);
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream) {
  backward<float>(dx, dx, dw, dy, x, w, rstd, n, h, stream);
}

void rmsnorm_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream) {
  backward<bf16>(dx, dx, dw, dy, x, w, rstd, n, h, stream);
}

void rmsnorm_backward(fp16* dx, float* dw, const fp16* dy, const fp16* x, const fp16* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream) {
  backward<fp16>(dx, dx, dw, dy, x, w, rstd, n, h, stream);
}

void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                              const float* r, const float* w, int64_t n, int64_t h, float eps,
                              cudaStream_t stream) {
  forward<float>(y, resid_out, rstd, x, r, w, n, h, eps, stream);
}

void rmsnorm_residual_forward(bf16* y, bf16* resid_out, float* rstd, const bf16* x, const bf16* r,
                              const bf16* w, int64_t n, int64_t h, float eps, cudaStream_t stream) {
  forward<bf16>(y, resid_out, rstd, x, r, w, n, h, eps, stream);
}

void rmsnorm_residual_forward(fp16* y, fp16* resid_out, float* rstd, const fp16* x, const fp16* r,
                              const fp16* w, int64_t n, int64_t h, float eps, cudaStream_t stream) {
  forward<fp16>(y, resid_out, rstd, x, r, w, n, h, eps, stream);
}

void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                               const float* resid_out, const float* w, const float* rstd, int64_t n,
                               int64_t h, cudaStream_t stream) {
  backward<float>(dsum, dresid, dw, dy, resid_out, w, rstd, n, h, stream);
}

void rmsnorm_residual_backward(bf16* dsum, float* dw, const bf16* dy, const bf16* dresid,
                               const bf16* resid_out, const bf16* w, const float* rstd, int64_t n,
                               int64_t h, cudaStream_t stream) {
  backward<bf16>(dsum, dresid, dw, dy, resid_out, w, rstd, n, h, stream);
}

void rmsnorm_residual_backward(fp16* dsum, float* dw, const fp16* dy, const fp16* dresid,
                               const fp16* resid_out, const fp16* w, const float* rstd, int64_t n,
                               int64_t h, cudaStream_t stream) {
  backward<fp16>(dsum, dresid, dw, dy, resid_out, w, rstd, n, h, stream);
}

}  // namespace mds::ops::cuda
