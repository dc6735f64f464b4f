// The CUDA-core flash attention kernels (Dao, FlashAttention-2, arXiv:2307.08691): causal
// grouped-query attention, fp32, bf16 or fp16 storage (T) with fp32 arithmetic and accumulation,
// matching ops/cpu/attention.cpp: the same layouts and strides (q, k, v read in place from the
// fused qkv buffer), lse [b, nq, s] the only saved statistic, scale 1/sqrt(hd), query head j
// reading kv head j / (nq / nkv). attention.cu launches them (grids, shared memory, dispatch);
// tests/cuda_emu runs this source on the CPU.
//
// Tiles are kTile = 32 queries x 32 keys; a block is 4 warps and each warp owns 8 rows of the
// tile it accumulates, one lane per key (or query) column for the scores and one lane per 32
// head-dim elements for the outputs. A row's scores, softmax and accumulation stay inside its
// warp (probabilities move between lanes by shuffles), so the block synchronises only around
// the shared-memory tile loads. Head dims up to 128: the kernels are templated on
// kChunks = ceil(hd / 32) register columns per lane; hd not a multiple of 32 is masked.
//
// Forward: a block per (query tile, head, batch) streams the K/V tiles at or below the
// diagonal through shared memory with an online softmax (running max and sum per row).
//
// Backward: D = rowsum(dout * out) first (attention_d.cuh), then two kernels, each output owned
// by one block:
//   dk/dv: a block per (key tile, kv head, batch) walks the query tiles at or below the
//          diagonal of every query head of the group (GQA summed in place, in a fixed order);
//   dq:    a block per (query tile, head, batch) walks the key tiles.
// Both recompute P = exp(scale q.k - lse). The alternative, one kernel over key tiles adding
// dq with atomics, does ~25% fewer FLOPs but its fp32 atomic sums depend on timing; the two
// kernels are bit-deterministic from run to run (as the CPU kernel promises) and need no
// zeroed dq or per-query-head dk/dv buffer.
//
// 16-bit (bf16, fp16): q, k, v, dout (and out, for D) are converted to fp32 as the tiles are
// loaded, so shared memory, scores, probabilities and accumulators are fp32 exactly as in the
// fp32 kernels; only the final stores of out, dq, dk, dv round (once). lse and D stay fp32. These
// kernels spend no tensor cores: attention_tc.cu and attention_mma.cu have the kernels the 16-bit
// entry points dispatch to where they apply (hd 64 or 128, 16-byte aligned rows);
// these are the reference those must match and the path for every other shape.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::cuda_core {

constexpr int kTile = 32;                     // query and key tile length (one warp's lanes)
constexpr int kWarps = 4;                     // warps per block
constexpr int kThreads = kWarps * 32;         // threads per block
constexpr int kRowsPerWarp = kTile / kWarps;  // tile rows each warp owns
constexpr int kMaxHeadDim = 128;
constexpr unsigned kFull = 0xffffffffu;

// Shared-memory rows are hd + 1 floats apart: a lane per row reading column d then hits
// (r * (hd + 1) + d) mod 32, a different bank per lane for every even hd.
__host__ __device__ inline int tile_ld(int hd) {
  return hd + 1;
}

// tile[r][d] = src row (r0 + r), columns [0, hd), as fp32; rows at or past s are zero.
template <typename T>
__device__ inline void load_tile(float* tile, const T* src, int64_t r0, int64_t s, int hd,
                                 int64_t stride) {
  const int ld = tile_ld(hd);
  for (int idx = threadIdx.x; idx < kTile * hd; idx += kThreads) {
    const int r = idx / hd, d = idx - r * hd;
    const int64_t row = r0 + r;
    tile[r * ld + d] = row < s ? to_float(src[row * stride + d]) : 0.0f;
  }
}

// a[r] . b[c] over hd, both tiles in shared memory.
__device__ inline float tile_dot(const float* a, const float* b, int hd) {
  float acc = 0.0f;
  for (int d = 0; d < hd; ++d) acc = fmaf(a[d], b[d], acc);
  return acc;
}

// ---- Forward ---------------------------------------------------------------------------------

template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, int64_t s,
                             int nq, int group, int hd, int64_t qkv_stride, int64_t out_stride,
                             float scale) {
  float* smem = reinterpret_cast<float*>(dynamic_smem());
  const int ld = tile_ld(hd);
  float* qs = smem;             // [kTile][ld]
  float* ks = qs + kTile * ld;  // [kTile][ld]
  float* vs = ks + kTile * ld;  // [kTile][ld]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // The last query tiles see the most keys: launch them first.
  const int64_t qt = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, g = h / group;
  const int64_t bi = blockIdx.z, i0 = qt * kTile;
  const T* qb = q + bi * s * qkv_stride + static_cast<int64_t>(h) * hd;
  const T* kb = k + bi * s * qkv_stride + static_cast<int64_t>(g) * hd;
  const T* vb = v + bi * s * qkv_stride + static_cast<int64_t>(g) * hd;

  load_tile(qs, qb, i0, s, hd, qkv_stride);
  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    m[i] = -INFINITY;
    l[i] = 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) acc[i][j] = 0.0f;
  }

  const int64_t last_row = (i0 + kTile < s ? i0 + kTile : s) - 1;
  for (int64_t j0 = 0; j0 <= last_row; j0 += kTile) {  // causal: key tiles up to the diagonal
    __syncthreads();                                   // the previous K/V tile is no longer read
    load_tile(ks, kb, j0, s, hd, qkv_stride);
    load_tile(vs, vb, j0, s, hd, qkv_stride);
    __syncthreads();
    const int64_t col = j0 + lane;  // this lane's key
    float p[kRowsPerWarp];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i;
      const int64_t row = i0 + r;
      const float sc =
          col <= row && col < s ? scale * tile_dot(qs + r * ld, ks + lane * ld, hd) : -INFINITY;
      const float mx = fmaxf(m[i], warp_max(sc));
      // mx is -inf only for a row with no key yet (rows past s): nothing to add or rescale.
      const float corr = mx == -INFINITY ? 1.0f : expf(m[i] - mx);
      p[i] = mx == -INFINITY ? 0.0f : expf(sc - mx);
      l[i] = l[i] * corr + warp_sum(p[i]);
      m[i] = mx;
#pragma unroll
      for (int j = 0; j < kChunks; ++j) acc[i][j] *= corr;
    }
    const int klen = static_cast<int>(s - j0 < kTile ? s - j0 : kTile);
    for (int c = 0; c < klen; ++c) {
      float pc[kRowsPerWarp];  // row i's probability of key c, from lane c
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) pc[i] = __shfl_sync(kFull, p[i], c);
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int d = lane + 32 * j;
        const float vd = d < hd ? vs[c * ld + d] : 0.0f;
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) acc[i][j] = fmaf(pc[i], vd, acc[i][j]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int64_t row = i0 + warp * kRowsPerWarp + i;
    if (row >= s) continue;
    const float inv = 1.0f / l[i];
    T* o = out + (bi * s + row) * out_stride + static_cast<int64_t>(h) * hd;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) o[d] = from_float<T>(acc[i][j] * inv);
    }
    if (lane == 0) lse[(bi * nq + h) * s + row] = m[i] + logf(l[i]);
  }
}

// ---- Backward (the D pass: attention_d.cuh) ------------------------------------------------

// dk, dv of one key tile of one kv head, summed over the group's query heads and the query
// tiles at or below the diagonal, in that fixed order. Warp w owns keys w*8 .. w*8+7; for the
// scores a lane is a query row.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(T* dk, T* dv, const T* dout, const float* lse, const float* D,
                                   const T* q, const T* k, const T* v, int64_t s, int nq, int group,
                                   int hd, int64_t qkv_stride, int64_t out_stride, float scale) {
  float* smem = reinterpret_cast<float*>(dynamic_smem());
  const int ld = tile_ld(hd);
  float* ks = smem;              // [kTile][ld]
  float* vs = ks + kTile * ld;   // [kTile][ld]
  float* qs = vs + kTile * ld;   // [kTile][ld]
  float* dos = qs + kTile * ld;  // [kTile][ld]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t kt = blockIdx.x;  // early key tiles see the most queries: launched first
  const int g = blockIdx.y;
  const int64_t bi = blockIdx.z, j0 = kt * kTile;
  load_tile(ks, k + bi * s * qkv_stride + static_cast<int64_t>(g) * hd, j0, s, hd, qkv_stride);
  load_tile(vs, v + bi * s * qkv_stride + static_cast<int64_t>(g) * hd, j0, s, hd, qkv_stride);

  float dka[kRowsPerWarp][kChunks], dva[kRowsPerWarp][kChunks];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
#pragma unroll
    for (int j = 0; j < kChunks; ++j) dka[i][j] = dva[i][j] = 0.0f;
  }

  for (int h = g * group; h < (g + 1) * group; ++h) {
    const T* qb = q + bi * s * qkv_stride + static_cast<int64_t>(h) * hd;
    const T* dob = dout + bi * s * out_stride + static_cast<int64_t>(h) * hd;
    const float* lse_h = lse + (bi * nq + h) * s;
    const float* D_h = D + (bi * nq + h) * s;
    for (int64_t i0 = j0; i0 < s; i0 += kTile) {  // query tiles at or below the diagonal
      __syncthreads();                            // the previous Q/dO tile is no longer read
      load_tile(qs, qb, i0, s, hd, qkv_stride);
      load_tile(dos, dob, i0, s, hd, out_stride);
      __syncthreads();
      const int64_t row = i0 + lane;  // this lane's query
      const float l = row < s ? lse_h[row] : 0.0f, Di = row < s ? D_h[row] : 0.0f;
      float p[kRowsPerWarp], ds[kRowsPerWarp];
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) {
        const int c = warp * kRowsPerWarp + i;
        const int64_t col = j0 + c;
        p[i] = ds[i] = 0.0f;
        if (col <= row && row < s) {  // causal, and col < s follows
          p[i] = expf(scale * tile_dot(qs + lane * ld, ks + c * ld, hd) - l);
          const float dp = tile_dot(dos + lane * ld, vs + c * ld, hd);
          ds[i] = p[i] * (dp - Di) * scale;
        }
      }
      const int qlen = static_cast<int>(s - i0 < kTile ? s - i0 : kTile);
      for (int r = 0; r < qlen; ++r) {
        float pr[kRowsPerWarp], dsr[kRowsPerWarp];  // key i's P and dS of query r, from lane r
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) {
          pr[i] = __shfl_sync(kFull, p[i], r);
          dsr[i] = __shfl_sync(kFull, ds[i], r);
        }
#pragma unroll
        for (int j = 0; j < kChunks; ++j) {
          const int d = lane + 32 * j;
          const float qd = d < hd ? qs[r * ld + d] : 0.0f;
          const float gd = d < hd ? dos[r * ld + d] : 0.0f;
#pragma unroll
          for (int i = 0; i < kRowsPerWarp; ++i) {
            dva[i][j] = fmaf(pr[i], gd, dva[i][j]);
            dka[i][j] = fmaf(dsr[i], qd, dka[i][j]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int64_t col = j0 + warp * kRowsPerWarp + i;
    if (col >= s) continue;
    T* dkr = dk + (bi * s + col) * qkv_stride + static_cast<int64_t>(g) * hd;
    T* dvr = dv + (bi * s + col) * qkv_stride + static_cast<int64_t>(g) * hd;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) {
        dkr[d] = from_float<T>(dka[i][j]);
        dvr[d] = from_float<T>(dva[i][j]);
      }
    }
  }
}

// dq of one query tile of one head over the key tiles at or below the diagonal. Warp w owns
// query rows w*8 .. w*8+7; for the scores a lane is a key.
template <typename T, int kChunks>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(T* dq, const T* dout, const float* lse, const float* D, const T* q,
                                 const T* k, const T* v, int64_t s, int nq, int group, int hd,
                                 int64_t qkv_stride, int64_t out_stride, float scale) {
  float* smem = reinterpret_cast<float*>(dynamic_smem());
  const int ld = tile_ld(hd);
  float* qs = smem;              // [kTile][ld]
  float* dos = qs + kTile * ld;  // [kTile][ld]
  float* ks = dos + kTile * ld;  // [kTile][ld]
  float* vs = ks + kTile * ld;   // [kTile][ld]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, g = h / group;
  const int64_t bi = blockIdx.z, i0 = qt * kTile;
  const T* kb = k + bi * s * qkv_stride + static_cast<int64_t>(g) * hd;
  const T* vb = v + bi * s * qkv_stride + static_cast<int64_t>(g) * hd;
  load_tile(qs, q + bi * s * qkv_stride + static_cast<int64_t>(h) * hd, i0, s, hd, qkv_stride);
  load_tile(dos, dout + bi * s * out_stride + static_cast<int64_t>(h) * hd, i0, s, hd, out_stride);
  float l[kRowsPerWarp], Di[kRowsPerWarp], acc[kRowsPerWarp][kChunks];
#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int64_t row = i0 + warp * kRowsPerWarp + i;
    l[i] = row < s ? lse[(bi * nq + h) * s + row] : 0.0f;
    Di[i] = row < s ? D[(bi * nq + h) * s + row] : 0.0f;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) acc[i][j] = 0.0f;
  }

  const int64_t last_row = (i0 + kTile < s ? i0 + kTile : s) - 1;
  for (int64_t j0 = 0; j0 <= last_row; j0 += kTile) {
    __syncthreads();
    load_tile(ks, kb, j0, s, hd, qkv_stride);
    load_tile(vs, vb, j0, s, hd, qkv_stride);
    __syncthreads();
    const int64_t col = j0 + lane;
    float ds[kRowsPerWarp];
#pragma unroll
    for (int i = 0; i < kRowsPerWarp; ++i) {
      const int r = warp * kRowsPerWarp + i;
      const int64_t row = i0 + r;
      ds[i] = 0.0f;
      if (col <= row && row < s) {
        const float p = expf(scale * tile_dot(qs + r * ld, ks + lane * ld, hd) - l[i]);
        const float dp = tile_dot(dos + r * ld, vs + lane * ld, hd);
        ds[i] = p * (dp - Di[i]) * scale;
      }
    }
    const int klen = static_cast<int>(s - j0 < kTile ? s - j0 : kTile);
    for (int c = 0; c < klen; ++c) {
      float dsc[kRowsPerWarp];  // row i's dS of key c, from lane c
#pragma unroll
      for (int i = 0; i < kRowsPerWarp; ++i) dsc[i] = __shfl_sync(kFull, ds[i], c);
#pragma unroll
      for (int j = 0; j < kChunks; ++j) {
        const int d = lane + 32 * j;
        const float kd = d < hd ? ks[c * ld + d] : 0.0f;
#pragma unroll
        for (int i = 0; i < kRowsPerWarp; ++i) acc[i][j] = fmaf(dsc[i], kd, acc[i][j]);
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarp; ++i) {
    const int64_t row = i0 + warp * kRowsPerWarp + i;
    if (row >= s) continue;
    T* dqr = dq + (bi * s + row) * qkv_stride + static_cast<int64_t>(h) * hd;
#pragma unroll
    for (int j = 0; j < kChunks; ++j) {
      const int d = lane + 32 * j;
      if (d < hd) dqr[d] = from_float<T>(acc[i][j]);
    }
  }
}

}  // namespace mds::ops::cuda::cuda_core
