// Launches of the unfused causal GQA attention kernels (attention_unfused_kernels.cuh), for
// T = float, __nv_bfloat16, __half: a warp per row, kWarps rows per block, a 1-D grid over the
// rows (b * nq * s for the forward and dq, b * nkv * s for dk/dv).
#include "mds/core/error.h"
#include "mds/ops/cuda/attention_unfused.cuh"
#include "mds/ops/cuda/attention_unfused_kernels.cuh"
#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda {

namespace {

using unfused::kWarps;

}  // namespace

template <typename T>
void attention_forward_unfused(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                               int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                               int64_t out_stride, cudaStream_t stream) {
  MDS_ASSERT(hd > 0 && hd <= 128 && nq > 0 && nkv > 0 && nq % nkv == 0,
             "unfused attention: hd {} (1 to 128), {}/{} heads", hd, nq, nkv);
  const int64_t rows = b * nq * s;
  if (rows == 0) return;
  launch(unfused::forward_kernel<T>, unsigned((rows + kWarps - 1) / kWarps), kWarps * 32, 0, stream,
         out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, 1.0f / sqrtf(float(hd)));
}

template <typename T>
void attention_backward_unfused(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse,
                                const T* q, const T* k, const T* v, int64_t b, int64_t s,
                                int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                                int64_t out_stride, cudaStream_t stream) {
  MDS_ASSERT(hd > 0 && hd <= 128 && nq > 0 && nkv > 0 && nq % nkv == 0,
             "unfused attention: hd {} (1 to 128), {}/{} heads", hd, nq, nkv);
  if (b * s == 0) return;
  const float scale = 1.0f / sqrtf(float(hd));
  const int64_t q_rows = b * nq * s, kv_rows = b * nkv * s;
  launch(unfused::backward_dq_kernel<T>, unsigned((q_rows + kWarps - 1) / kWarps), kWarps * 32, 0,
         stream, dq, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, scale);
  launch(unfused::backward_dkv_kernel<T>, unsigned((kv_rows + kWarps - 1) / kWarps), kWarps * 32, 0,
         stream, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride, scale);
}

#define MDS_UNFUSED_INSTANTIATE(T)                                                                 \
  template void attention_forward_unfused(T*, float*, const T*, const T*, const T*, int64_t,       \
                                          int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,    \
                                          cudaStream_t);                                           \
  template void attention_backward_unfused(T*, T*, T*, const T*, const T*, const float*, const T*, \
                                           const T*, const T*, int64_t, int64_t, int64_t, int64_t, \
                                           int64_t, int64_t, int64_t, cudaStream_t);
MDS_UNFUSED_INSTANTIATE(float)
MDS_UNFUSED_INSTANTIATE(__nv_bfloat16)
MDS_UNFUSED_INSTANTIATE(__half)

}  // namespace mds::ops::cuda
