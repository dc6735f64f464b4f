// Causal grouped-query attention on the GPU: the launches of the CUDA-core flash kernels
// (attention_core.cuh: fp32, and 16-bit where the tensor cores do not apply) and the entry points
// of ops_cuda.h, which dispatch between them, the tensor-core kernels and the unfused ones.
//
// Grids: forward and dq (s / 32 query tiles, nq, b), dk/dv (s / 32 key tiles, nkv, b); dynamic
// shared memory of 3 (forward) or 4 (backward) tiles of 32 rows hd + 1 floats apart. The backward
// allocates D [b, nq, s] and fills it first (attention_d.cuh). 16-bit: the FA2 mma.sync kernels
// (attention_mma.cu) by default where they apply (hd 64 or 128, 16-byte aligned rows), the WMMA
// ones (attention_tc.cu) with MDS_ATTENTION=wmma, the CUDA-core kernels with
// MDS_ATTENTION=cuda-core (ops_cuda.h) and for every other shape.
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "mds/core/error.h"
#include "mds/ops/attention_backend.h"
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/attention_core.cuh"
#include "mds/ops/cuda/attention_d.cuh"
#include "mds/ops/cuda/attention_unfused.cuh"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using cuda_core::kMaxHeadDim;
using cuda_core::kThreads;
using cuda_core::kTile;
using cuda_core::tile_ld;

// ---- Launch ----------------------------------------------------------------------------------

struct Launch {
  dim3 grid;
  size_t smem_bytes;
  int group;
  float scale;
};

// Shapes are internal invariants (the model builds them), checked like the CPU kernel's.
Launch plan(int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd, int tiles_in_smem,
            int64_t grid_y) {
  MDS_ASSERT(nq > 0 && nkv > 0 && nq % nkv == 0,
             "query heads ({}) must be a positive multiple of kv heads ({})", nq, nkv);
  MDS_ASSERT(hd > 0 && hd <= kMaxHeadDim, "CUDA attention: head dim {} outside [1, {}]", hd,
             kMaxHeadDim);
  MDS_ASSERT(grid_y <= 65535 && b <= 65535, "CUDA attention: {} heads x {} batch exceed the grid",
             grid_y, b);
  const int64_t tiles = (s + kTile - 1) / kTile;
  MDS_ASSERT(tiles <= (int64_t{1} << 31) - 1, "CUDA attention: sequence {} too long", s);
  return Launch{
      dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(grid_y), static_cast<unsigned>(b)),
      static_cast<size_t>(tiles_in_smem) * kTile * tile_ld(static_cast<int>(hd)) * sizeof(float),
      static_cast<int>(nq / nkv), 1.0f / std::sqrt(static_cast<float>(hd))};
}

template <typename T, int kChunks>
void forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, int64_t s, int64_t nq,
                  int hd, int64_t qkv_stride, int64_t out_stride, const Launch& L,
                  cudaStream_t stream) {
  auto kernel = cuda_core::attention_forward_kernel<T, kChunks>;
  launch(kernel, L.grid, kThreads, L.smem_bytes, stream, out, lse, q, k, v, s, static_cast<int>(nq),
         L.group, hd, qkv_stride, out_stride, L.scale);
}

template <typename T, int kChunks>
void backward_impl(T* dq, T* dk, T* dv, const T* dout, const float* lse, const float* D, const T* q,
                   const T* k, const T* v, int64_t s, int64_t nq, int hd, int64_t qkv_stride,
                   int64_t out_stride, const Launch& kv_launch, const Launch& q_launch,
                   cudaStream_t stream) {
  auto dkdv = cuda_core::attention_backward_dkdv_kernel<T, kChunks>;
  launch(dkdv, kv_launch.grid, kThreads, kv_launch.smem_bytes, stream, dk, dv, dout, lse, D, q, k,
         v, s, static_cast<int>(nq), kv_launch.group, hd, qkv_stride, out_stride, kv_launch.scale);
  auto dqk = cuda_core::attention_backward_dq_kernel<T, kChunks>;
  launch(dqk, q_launch.grid, kThreads, q_launch.smem_bytes, stream, dq, dout, lse, D, q, k, v, s,
         static_cast<int>(nq), q_launch.group, hd, qkv_stride, out_stride, q_launch.scale);
}

template <typename T>
void forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
             int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
             cudaStream_t stream) {
  const Launch L = plan(b, s, nq, nkv, hd, 3, nq);
  if (b == 0 || s == 0) return;
  const int h = static_cast<int>(hd);
  switch ((h + 31) / 32) {
    case 1:
      forward_impl<T, 1>(out, lse, q, k, v, s, nq, h, qkv_stride, out_stride, L, stream);
      break;
    case 2:
      forward_impl<T, 2>(out, lse, q, k, v, s, nq, h, qkv_stride, out_stride, L, stream);
      break;
    case 3:
      forward_impl<T, 3>(out, lse, q, k, v, s, nq, h, qkv_stride, out_stride, L, stream);
      break;
    default:
      forward_impl<T, 4>(out, lse, q, k, v, s, nq, h, qkv_stride, out_stride, L, stream);
  }
}

template <typename T>
void backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
              const T* k, const T* v, int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
              int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  const Launch kv_launch = plan(b, s, nq, nkv, hd, 4, nkv);
  const Launch q_launch = plan(b, s, nq, nkv, hd, 4, nq);
  if (b == 0 || s == 0) return;
  const int h = static_cast<int>(hd);
  // Freed when this returns: safe for work enqueued on the same stream (allocator.h).
  DeviceBuffer<float> D(static_cast<size_t>(b * nq * s));
  attention_detail::attention_backward_d(D.data(), dout, out, b, s, nq, h, out_stride, stream);
  switch ((h + 31) / 32) {
    case 1:
      backward_impl<T, 1>(dq, dk, dv, dout, lse, D.data(), q, k, v, s, nq, h, qkv_stride,
                          out_stride, kv_launch, q_launch, stream);
      break;
    case 2:
      backward_impl<T, 2>(dq, dk, dv, dout, lse, D.data(), q, k, v, s, nq, h, qkv_stride,
                          out_stride, kv_launch, q_launch, stream);
      break;
    case 3:
      backward_impl<T, 3>(dq, dk, dv, dout, lse, D.data(), q, k, v, s, nq, h, qkv_stride,
                          out_stride, kv_launch, q_launch, stream);
      break;
    default:
      backward_impl<T, 4>(dq, dk, dv, dout, lse, D.data(), q, k, v, s, nq, h, qkv_stride,
                          out_stride, kv_launch, q_launch, stream);
  }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  if (attention_backend() == AttentionBackend::unfused)
    return attention_forward_unfused(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
                                     stream);
  forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride, cudaStream_t stream) {
  if (attention_backend() == AttentionBackend::unfused)
    return attention_backward_unfused(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd,
                                      qkv_stride, out_stride, stream);
  backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_forward_cuda_core(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                 int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                 int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward_cuda_core(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                                  const float* lse, const bf16* q, const bf16* k, const bf16* v,
                                  int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                  int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_forward_cuda_core(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                                 int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                 int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward_cuda_core(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                                  const float* lse, const fp16* q, const fp16* k, const fp16* v,
                                  int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                  int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

namespace {

// The 16-bit dispatch (ops_cuda.h): where the tensor cores apply (attention_tc_supported), the
// FA2 mma.sync kernels (attention_mma.cu), or the WMMA ones (attention_tc.cu) with
// MDS_ATTENTION=wmma; MDS_ATTENTION=cuda-core, or shapes the tensor cores do not take, the
// CUDA-core kernels (attention_core.cuh). The variable is read once per process; another value is a
// UserError.
enum class Kernels { mma, wmma, cuda_core };

Kernels kernels_chosen() {
  static const Kernels chosen = [] {
    const char* e = std::getenv("MDS_ATTENTION");
    if (e == nullptr || *e == '\0' || std::strcmp(e, "mma") == 0) return Kernels::mma;
    if (std::strcmp(e, "cuda-core") == 0) return Kernels::cuda_core;
    if (std::strcmp(e, "wmma") == 0) return Kernels::wmma;
    MDS_FAIL(
        "MDS_ATTENTION={} is not an attention implementation: use mma (the default), wmma or "
        "cuda-core",
        e);
  }();
  return chosen;
}

template <typename H>
void dispatch_forward(H* out, float* lse, const H* q, const H* k, const H* v, int64_t b, int64_t s,
                      int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
                      cudaStream_t stream) {
  const Kernels kernels = kernels_chosen();
  if (attention_backend() == AttentionBackend::unfused)
    attention_forward_unfused(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
  else if (kernels == Kernels::cuda_core ||
           !attention_tc_supported(hd, qkv_stride, out_stride, {out, q, k, v}))
    forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
  else if (kernels == Kernels::wmma)
    attention_forward_tc(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
  else
    attention_forward_mma(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

template <typename H>
void dispatch_backward(H* dq, H* dk, H* dv, const H* dout, const H* out, const float* lse,
                       const H* q, const H* k, const H* v, int64_t b, int64_t s, int64_t nq,
                       int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
                       cudaStream_t stream) {
  const Kernels kernels = kernels_chosen();
  if (attention_backend() == AttentionBackend::unfused)
    attention_backward_unfused(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                               out_stride, stream);
  else if (kernels == Kernels::cuda_core ||
           !attention_tc_supported(hd, qkv_stride, out_stride, {dq, dk, dv, dout, q, k, v}))
    backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
             stream);
  else if (kernels == Kernels::wmma)
    attention_backward_tc(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                          out_stride, stream);
  else
    attention_backward_mma(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                           out_stride, stream);
}

}  // namespace

void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  dispatch_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride, cudaStream_t stream) {
  dispatch_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
                    stream);
}

void attention_forward(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  dispatch_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                        const float* lse, const fp16* q, const fp16* k, const fp16* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride, cudaStream_t stream) {
  dispatch_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
                    stream);
}

}  // namespace mds::ops::cuda
