// Launches of the FA2 (mma.sync) 16-bit causal grouped-query attention (attention_mma.cuh,
// attention_mma_bwd.cuh): the default tensor-core path of the 16-bit dispatch in attention.cu,
// under the same conditions as the WMMA kernels (attention_tc_supported: hd 64 or 128, strides
// multiples of 8 elements, 16-byte aligned pointers). Grids: forward (s / 128 query tiles, nq, b);
// dk/dv (s / 64 key tiles, nkv, b); dq (s / 64 query tiles, nq, b); tile x runs in reverse so that
// the longest blocks start first.
#include <cmath>
#include <cstdint>

#include "mds/core/error.h"
#include "mds/ops/cuda/allocator.h"
#include "mds/ops/cuda/attention_d.cuh"
#include "mds/ops/cuda/attention_mma_bwd.cuh"
#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/ops_cuda.h"

namespace mds::ops::cuda {

namespace {

struct Plan {
  int group;
  float scale, scale_log2;
};

// Shapes are internal invariants (the model builds them; the dispatch checks the alignment).
Plan plan(int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
          int64_t out_stride) {
  MDS_ASSERT(nkv > 0 && nq % nkv == 0, "query heads ({}) must be a multiple of kv heads ({})", nq,
             nkv);
  MDS_ASSERT(hd == 64 || hd == 128, "mma attention: head dim {} is not 64 or 128", hd);
  MDS_ASSERT(qkv_stride % 8 == 0 && out_stride % 8 == 0,
             "mma attention: strides {} and {} are not multiples of 8", qkv_stride, out_stride);
  MDS_ASSERT(nq <= 65535 && b <= 65535, "mma attention: {} heads x {} batch exceed the grid", nq,
             b);
  MDS_ASSERT(s < (int64_t{1} << 36), "mma attention: sequence {} too long", s);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  return Plan{static_cast<int>(nq / nkv), scale, scale * fa2::kLog2e};
}

dim3 grid(int64_t s, int tile, int64_t heads, int64_t b) {
  return dim3(static_cast<unsigned>((s + tile - 1) / tile), static_cast<unsigned>(heads),
              static_cast<unsigned>(b));
}

template <int HD, typename T>
void forward_impl(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                  int64_t nq, int64_t qkv_stride, int64_t out_stride, const Plan& p,
                  cudaStream_t stream) {
  auto kernel = fa2::fa2_forward_kernel<HD, T>;
  constexpr size_t bytes = fa2::Geo<HD>::forward_smem;
  launch(kernel, grid(s, fa2::kFwdRows, nq, b), fa2::kThreads, bytes, stream, out, lse, q, k, v, s,
         static_cast<int>(nq), p.group, qkv_stride, out_stride, p.scale_log2);
}

template <int HD, typename T>
void backward_impl(T* dq, T* dk, T* dv, const T* dout, const float* lse, const float* D, const T* q,
                   const T* k, const T* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                   int64_t qkv_stride, int64_t out_stride, const Plan& p, cudaStream_t stream) {
  auto dkdv = fa2::fa2_dkdv_kernel<HD, T>;
  constexpr size_t kv_bytes = fa2::Geo<HD>::dkdv_smem;
  launch(dkdv, grid(s, fa2::kBwdTile, nkv, b), fa2::kThreads, kv_bytes, stream, dk, dv, dout, lse,
         D, q, k, v, s, static_cast<int>(nq), p.group, qkv_stride, out_stride, p.scale,
         p.scale_log2);
  auto dqk = fa2::fa2_dq_kernel<HD, T>;
  constexpr size_t q_bytes = fa2::Geo<HD>::dq_smem;
  launch(dqk, grid(s, fa2::kBwdTile, nq, b), fa2::kThreads, q_bytes, stream, dq, dout, lse, D, q, k,
         v, s, static_cast<int>(nq), p.group, qkv_stride, out_stride, p.scale, p.scale_log2);
}

template <typename T>
void forward_mma(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b, int64_t s,
                 int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
                 cudaStream_t stream) {
  const Plan p = plan(b, s, nq, nkv, hd, qkv_stride, out_stride);
  MDS_ASSERT(attention_tc_supported(hd, qkv_stride, out_stride, {out, q, k, v}),
             "mma attention: q, k, v, out must be 16-byte aligned");
  if (b == 0 || s == 0) return;
  if (hd == 64)
    forward_impl<64>(out, lse, q, k, v, b, s, nq, qkv_stride, out_stride, p, stream);
  else
    forward_impl<128>(out, lse, q, k, v, b, s, nq, qkv_stride, out_stride, p, stream);
}

template <typename T>
void backward_mma(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse, const T* q,
                  const T* k, const T* v, int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                  int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  const Plan p = plan(b, s, nq, nkv, hd, qkv_stride, out_stride);
  MDS_ASSERT(attention_tc_supported(hd, qkv_stride, out_stride, {dq, dk, dv, dout, q, k, v}),
             "mma attention: q, k, v, dq, dk, dv, dout must be 16-byte aligned");
  if (b == 0 || s == 0) return;
  // Freed when this returns: safe for work enqueued on the same stream (allocator.h).
  DeviceBuffer<float> D(static_cast<size_t>(b * nq * s));
  attention_detail::attention_backward_d(D.data(), dout, out, b, s, nq, hd, out_stride, stream);
  if (hd == 64)
    backward_impl<64>(dq, dk, dv, dout, lse, D.data(), q, k, v, b, s, nq, nkv, qkv_stride,
                      out_stride, p, stream);
  else
    backward_impl<128>(dq, dk, dv, dout, lse, D.data(), q, k, v, b, s, nq, nkv, qkv_stride,
                       out_stride, p, stream);
}

}  // namespace

void attention_forward_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                           int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                           int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  forward_mma(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward_mma(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                            const float* lse, const bf16* q, const bf16* k, const bf16* v,
                            int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                            int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  backward_mma(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
               stream);
}

void attention_forward_mma(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                           int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                           int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  forward_mma(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, stream);
}

void attention_backward_mma(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                            const float* lse, const fp16* q, const fp16* k, const fp16* v,
                            int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                            int64_t qkv_stride, int64_t out_stride, cudaStream_t stream) {
  backward_mma(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride,
               stream);
}

}  // namespace mds::ops::cuda
