// Launch of the WMMA tensor-core attention (kernels and their design: attention_tc.cuh): grids,
// shared-memory sizes, the shape checks and the D pass; the bf16 and fp16 entry points of
// ops_cuda.h.
#include <cmath>
#include <cstdint>

#include "mds/core/error.h"
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/attention_d.cuh"
#include "mds/ops/cuda/attention_tc.cuh"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

using tc::Geo;
using tc::kThreads;
using tc::kTile;
using tc::tc_dkdv_kernel;
using tc::tc_dq_kernel;
using tc::tc_forward_kernel;

// ---- Launch ----------------------------------------------------------------------------------

struct Launch {
  dim3 grid;
  int group;
  float scale;
};

bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// Shapes are internal invariants (the model builds them; the dispatch checks the alignment).
Launch plan(int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
            int64_t out_stride, int64_t grid_y) {
  MDS_ASSERT(nq > 0 && nkv > 0 && nq % nkv == 0,
             "query heads ({}) must be a positive multiple of kv heads ({})", nq, nkv);
  MDS_ASSERT(hd == 64 || hd == 128, "tensor-core attention: head dim {} is not 64 or 128", hd);
  MDS_ASSERT(qkv_stride % 8 == 0 && out_stride % 8 == 0,
             "tensor-core attention: strides {} and {} are not multiples of 8", qkv_stride,
             out_stride);
  MDS_ASSERT(grid_y <= 65535 && b <= 65535,
             "tensor-core attention: {} heads x {} batch exceed the grid", grid_y, b);
  const int64_t tiles = (s + kTile - 1) / kTile;
  MDS_ASSERT(tiles <= (int64_t{1} << 31) - 1, "tensor-core attention: sequence {} too long", s);
  return Launch{
      dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(grid_y), static_cast<unsigned>(b)),
      static_cast<int>(nq / nkv), 1.0f / std::sqrt(static_cast<float>(hd))};
}

template <int HD, typename T>
void forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, int64_t s, int64_t nq,
                  int64_t qkv_stride, int64_t out_stride, const Launch& L, cudaStream_t stream) {
  auto kernel = tc_forward_kernel<HD, T>;
  constexpr size_t bytes = Geo<HD>::forward_smem;
  launch(kernel, L.grid, kThreads, bytes, stream, out, lse, q, k, v, s, static_cast<int>(nq),
         L.group, qkv_stride, out_stride, L.scale);
}

template <int HD, typename T>
void backward_impl(T* dq, T* dk, T* dv, const T* dout, const float* lse, const float* D, const T* q,
                   const T* k, const T* v, int64_t s, int64_t nq, int64_t qkv_stride,
                   int64_t out_stride, const Launch& kv_launch, const Launch& q_launch,
                   cudaStream_t stream) {
  auto dkdv = tc_dkdv_kernel<HD, T>;
  constexpr size_t kv_bytes = Geo<HD>::dkdv_smem;
  launch(dkdv, kv_launch.grid, kThreads, kv_bytes, stream, dk, dv, dout, lse, D, q, k, v, s,
         static_cast<int>(nq), kv_launch.group, qkv_stride, out_stride, kv_launch.scale);
  auto dqk = tc_dq_kernel<HD, T>;
  constexpr size_t q_bytes = Geo<HD>::dq_smem;
  launch(dqk, q_launch.grid, kThreads, q_bytes, stream, dq, dout, lse, D, q, k, v, s,
         static_cast<int>(nq), q_launch.group, qkv_stride, out_stride, q_launch.scale);
}

}  // namespace

bool attention_tc_supported(int64_t hd, int64_t qkv_stride, int64_t out_stride,
                            std::initializer_list<const void*> pointers) {
  if (hd != 64 && hd != 128) return false;
  if (qkv_stride % 8 != 0 || out_stride % 8 != 0) return false;
  for (const void* p : pointers)
    if (!aligned16(p)) return false;
  return true;
}

namespace {

template <typename T>
void forward_tc(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
                cudaStream_t stream) {
  const Launch L = plan(b, s, nq, nkv, hd, qkv_stride, out_stride, nq);
  MDS_ASSERT(attention_tc_supported(hd, qkv_stride, out_stride, {out, q, k, v}),
             "tensor-core attention: q, k, v, out must be 16-byte aligned");
  if (b == 0 || s == 0) return;
  if (hd == 64)
    forward_impl<64>(out, lse, q, k, v, s, nq, qkv_stride, out_stride, L, stream);
  else
    forward_impl<128>(out, lse, q, k, v, s, nq, qkv_stride, out_stride, L, stream);
}

template <typename T>
void backward_tc(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
                 const T* k, const T* v, int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                 int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  const Launch kv_launch = plan(b, s, nq, nkv, hd, qkv_stride, out_stride, nkv);
  const Launch q_launch = plan(b, s, nq, nkv, hd, qkv_stride, out_stride, nq);
  MDS_ASSERT(attention_tc_supported(hd, qkv_stride, out_stride, {dq, dk, dv, dout, q, k, v}),
             "tensor-core attention: q, k, v, dq, dk, dv, dout must be 16-byte aligned");
  if (b == 0 || s == 0) return;
  // Freed when this returns: safe for work enqueued on the same stream (allocator.h).
  DeviceBuffer<float> D(static_cast<size_t>(b * nq * s));
  attention_detail::attention_backward_d(D.data(), dout, out, b, s, nq, hd, out_stride, stream);
  if (hd == 64)
    backward_impl<64>(dq, dk, dv, dout, lse, D.data(), q, k, v, s, nq, qkv_stride, out_stride,
                      kv_launch, q_launch, stream);
  else
    backward_impl<128>(dq, dk, dv, dout, lse, D.data(), q, k, v, s, nq, qkv_stride, out_stride,
                       kv_launch, q_launch, stream);
}

}  // namespace

void attention_forward_tc(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  forward_tc(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward_tc(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                           const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                           int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                           int64_t out_stride, cudaStream_t stream) {
  backward_tc(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
              stream);
}

void attention_forward_tc(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  forward_tc(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward_tc(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                           const float* lse, const fp16* q, const fp16* k, const fp16* v, int64_t b,
                           int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                           int64_t out_stride, cudaStream_t stream) {
  backward_tc(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
              stream);
}

}  // namespace mds::ops::cuda
