// The unfused causal GQA attention kernels (--attention-backend unfused, ops/attention_backend.h):
// the plain path beside the flash kernels, with the same contract (ops_cuda.h) and the same lse;
// attention_unfused.cu launches them, tests/cuda_emu runs this source on the CPU.
// One warp per row, each lane owning the head dims lane, lane + 32, ...; dot products are warp
// sums (a fixed butterfly), so results never depend on timing.
//   forward   (b, query head, query row i): the row's maximum score, then its exponentials,
//             sum and weighted V, in two passes over the keys j <= i;
//   backward  (b, query head, row i): D_i = dout_i . out_i, dq_i = scale sum_j dS_ij k_j;
//             (b, kv head, key row j): dk_j, dv_j over the group's query heads and rows i >= j,
//             recomputing P_ij = exp(scale q_i . k_j - lse_i) and D_i.
// Slow by design (O(s^2 hd) per head, with no tiling or shared memory): a fallback and a second
// opinion, not the fast path.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::unfused {

constexpr int kWarps = 4;  // rows per block

template <typename T>
__device__ float warp_dot(const T* a, const T* b, int64_t hd) {
  float s = 0;
  for (int64_t d = threadIdx.x & 31; d < hd; d += 32) s += to_float(a[d]) * to_float(b[d]);
  return warp_sum(s);
}

// The warp's row among rows, or -1 past the end.
__device__ int64_t warp_row(int64_t rows) {
  const int64_t r = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  return r < rows ? r : -1;
}

template <typename T>
__global__ void forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                               int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                               int64_t out_stride, float scale) {
  const int64_t r = warp_row(b * nq * s);  // r = (bi * nq + h) * s + i
  if (r < 0) return;
  const int64_t i = r % s, h = r / s % nq, bi = r / s / nq, g = h / (nq / nkv);
  const T* qi = q + (bi * s + i) * qkv_stride + h * hd;
  float m = -INFINITY;
  for (int64_t j = 0; j <= i; ++j)
    m = fmaxf(m, scale * warp_dot(qi, k + (bi * s + j) * qkv_stride + g * hd, hd));
  float sum = 0, acc[4] = {0, 0, 0, 0};  // hd <= 128: at most 4 dims per lane
  for (int64_t j = 0; j <= i; ++j) {
    const float p = expf(scale * warp_dot(qi, k + (bi * s + j) * qkv_stride + g * hd, hd) - m);
    sum += p;
    const T* vj = v + (bi * s + j) * qkv_stride + g * hd;
    for (int64_t d = threadIdx.x & 31, t = 0; d < hd; d += 32, ++t) acc[t] += p * to_float(vj[d]);
  }
  T* oi = out + (bi * s + i) * out_stride + h * hd;
  for (int64_t d = threadIdx.x & 31, t = 0; d < hd; d += 32, ++t)
    oi[d] = from_float<T>(acc[t] / sum);
  if ((threadIdx.x & 31) == 0) lse[r] = m + logf(sum);
}

template <typename T>
__global__ void backward_dq_kernel(T* dq, const T* dout, const T* out, const float* lse, const T* q,
                                   const T* k, const T* v, int64_t b, int64_t s, int64_t nq,
                                   int64_t nkv, int64_t hd, int64_t qkv_stride, int64_t out_stride,
                                   float scale) {
  const int64_t r = warp_row(b * nq * s);
  if (r < 0) return;
  const int64_t i = r % s, h = r / s % nq, bi = r / s / nq, g = h / (nq / nkv);
  const T* qi = q + (bi * s + i) * qkv_stride + h * hd;
  const T* doi = dout + (bi * s + i) * out_stride + h * hd;
  const float di = warp_dot(doi, out + (bi * s + i) * out_stride + h * hd, hd), l = lse[r];
  float acc[4] = {0, 0, 0, 0};
  for (int64_t j = 0; j <= i; ++j) {
    const T* kj = k + (bi * s + j) * qkv_stride + g * hd;
    const float p = expf(scale * warp_dot(qi, kj, hd) - l);
    const float ds = p * (warp_dot(doi, v + (bi * s + j) * qkv_stride + g * hd, hd) - di);
    for (int64_t d = threadIdx.x & 31, t = 0; d < hd; d += 32, ++t) acc[t] += ds * to_float(kj[d]);
  }
  T* dqi = dq + (bi * s + i) * qkv_stride + h * hd;
  for (int64_t d = threadIdx.x & 31, t = 0; d < hd; d += 32, ++t)
    dqi[d] = from_float<T>(scale * acc[t]);
}

template <typename T>
__global__ void backward_dkv_kernel(T* dk, T* dv, const T* dout, const T* out, const float* lse,
                                    const T* q, const T* k, const T* v, int64_t b, int64_t s,
                                    int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                                    int64_t out_stride, float scale) {
  const int64_t r = warp_row(b * nkv * s);  // r = (bi * nkv + g) * s + j
  if (r < 0) return;
  const int64_t j = r % s, g = r / s % nkv, bi = r / s / nkv, group = nq / nkv;
  const T* kj = k + (bi * s + j) * qkv_stride + g * hd;
  const T* vj = v + (bi * s + j) * qkv_stride + g * hd;
  float dk_acc[4] = {0, 0, 0, 0}, dv_acc[4] = {0, 0, 0, 0};
  for (int64_t h = g * group; h < (g + 1) * group; ++h)
    for (int64_t i = j; i < s; ++i) {
      const T* qi = q + (bi * s + i) * qkv_stride + h * hd;
      const T* doi = dout + (bi * s + i) * out_stride + h * hd;
      const float di = warp_dot(doi, out + (bi * s + i) * out_stride + h * hd, hd);
      const float p = expf(scale * warp_dot(qi, kj, hd) - lse[(bi * nq + h) * s + i]);
      const float ds = p * (warp_dot(doi, vj, hd) - di);
      for (int64_t d = threadIdx.x & 31, t = 0; d < hd; d += 32, ++t) {
        dk_acc[t] += ds * to_float(qi[d]);
        dv_acc[t] += p * to_float(doi[d]);
      }
    }
  T* dkj = dk + (bi * s + j) * qkv_stride + g * hd;
  T* dvj = dv + (bi * s + j) * qkv_stride + g * hd;
  for (int64_t d = threadIdx.x & 31, t = 0; d < hd; d += 32, ++t) {
    dkj[d] = from_float<T>(scale * dk_acc[t]);
    dvj[d] = from_float<T>(dv_acc[t]);
  }
}

}  // namespace mds::ops::cuda::unfused
