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
#include "mds/ops/cuda/rmsnorm.cuh"

namespace mds::ops::cuda {

namespace {

using rmsnorm_kernels::kRowChunk;
using rmsnorm_kernels::rmsnorm_backward_dw_partial_kernel;
using rmsnorm_kernels::rmsnorm_backward_dw_reduce_kernel;
using rmsnorm_kernels::rmsnorm_backward_dx_kernel;
using rmsnorm_kernels::rmsnorm_forward_kernel;

constexpr int kThreads = 256;

template <typename T>
void forward(T* y, T* resid_out, float* rstd, const T* x, const T* r, const T* w, int64_t n,
             int64_t h, float eps, cudaStream_t stream) {
  if (n == 0) return;
  launch(rmsnorm_forward_kernel<T>, static_cast<unsigned>(n), kThreads, 0, stream, y, resid_out,
         rstd, x, r, w, h, eps);
}

template <typename T>
void backward(T* dx, const T* prior, float* dw, const T* dy, const T* x, const T* w,
              const float* rstd, int64_t n, int64_t h, cudaStream_t stream) {
  if (n == 0) return;
  launch(rmsnorm_backward_dx_kernel<T>, static_cast<unsigned>(n), kThreads, 0, stream, dx, prior,
         dy, x, w, rstd, h);
  const int64_t chunks = (n + kRowChunk - 1) / kRowChunk;
  MDS_ASSERT(chunks <= 65535, "rmsnorm_backward: {} rows exceed the grid's y limit", n);
  // Freed when this returns: the allocator may hand it out again, which is safe for work
  // enqueued on the same stream (allocator.h).
  DeviceBuffer<float> partial(static_cast<size_t>(chunks * h));
  const dim3 grid(blocks_for(h, kThreads), static_cast<unsigned>(chunks));
  launch(rmsnorm_backward_dw_partial_kernel<T>, grid, kThreads, 0, stream, partial.data(), dy, x,
         rstd, n, h);
  launch(rmsnorm_backward_dw_reduce_kernel, blocks_for(h, kThreads), kThreads, 0, stream, dw,
         partial.data(), chunks, h);
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
