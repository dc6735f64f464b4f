// The WMMA tensor-core attention kernels and their device helpers. attention_tc.cu launches them
// (grids, shared memory, dispatch); tests/cuda_emu runs this source on the CPU.
//
// Causal grouped-query flash attention on 16-bit storage (bf16 or fp16, the kernels templated on
// the type T) with the tensor cores (WMMA, 16x16x16 fragments of T, fp32 accumulators), hd 64 or
// 128: the contract of the 16-bit attention in attention.cu (ops_cuda.h: q, k, v rows qkv_stride
// apart, out/dout rows out_stride apart, lse [b, nq, s], query head j reading kv head
// j / (nq / nkv), scale 1/sqrt(hd), deterministic).
//
// Dispatch (attention.cu): the 16-bit attention_forward/attention_backward take these kernels when
// the environment variable MDS_ATTENTION=wmma (read once) asks for them and hd is 64 or 128,
// qkv_stride and out_stride are multiples of 8 elements and every pointer is 16 bytes aligned
// (rows load as 16-byte vectors); by default the FA2 mma.sync kernels (attention_mma.cu) take
// those shapes, and MDS_ATTENTION=cuda-core the CUDA-core kernels.
//
// Tiles are kTile = 64 queries x 64 keys, a block is 4 warps and each warp owns 16 rows of the
// tile it accumulates (queries in the forward and dq, keys in dk/dv). The matrix products run on
// WMMA fragments; the accumulator layout is opaque, so the scores go through shared memory (fp32),
// where two lanes per row apply the mask, the online softmax (forward) or P and dS (backward) in
// fp32, and write P (dS) back in T over the warp's own score rows for the next product. A warp
// touches only its own score rows, so inside a tile it synchronises with __syncwarp; the block
// synchronises around the shared-memory tile loads. 16x16 blocks wholly above the diagonal are
// skipped (their probabilities are zero).
//
// Forward: a block per (query tile, head, batch); Q stays in fragments, the output accumulator in
// shared memory (fp32), rescaled row by row when the running max grows, then P V accumulated on
// it. Backward: D = rowsum(dout * out) first (fp32), then the two kernels of attention.cu:
//   dk/dv: a block per (key tile, kv head, batch) over the group's query heads and the query
//          tiles at or below the diagonal, in that fixed order; dK, dV in register fragments;
//   dq:    a block per (query tile, head, batch) over the key tiles; dQ in register fragments.
// No atomics: each output is owned by one block and summed in a fixed order.
//
// Precision against the CUDA-core kernels: products of 16-bit values are exact and the sums are
// fp32, but P (forward, dV) and dS (dK, dQ) are rounded to T to enter the tensor cores, as
// FlashAttention does; the softmax sum l, lse and D use the fp32 values. Each 16-bit output is
// rounded once from its fp32 value. In fp16, P is in [0, 1] and never overflows; dS is the
// loss-scaled gradient, rounded (to inf beyond 65504, or to a subnormal when tiny) like any fp16
// activation gradient.
#pragma once

#include <mma.h>

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda::tc {

namespace wmma = nvcuda::wmma;

constexpr int kTile = 64;              // query and key tile length
constexpr int kWarps = 4;              // warps per block, 16 rows of the tile each
constexpr int kThreads = kWarps * 32;  // threads per block
constexpr int kFrag = 16;              // WMMA fragment edge
constexpr int kTileFrags = kTile / kFrag;
constexpr int kSld = kTile + 4;   // fp32 score rows (floats): 16 rows are 4352 bytes, 32-aligned
constexpr int kPld = kTile + 8;   // 16-bit P / dS rows over a warp's score rows (16 x 72 x 2 bytes)
constexpr int kHalf = kTile / 2;  // score columns per lane (two lanes per row)
constexpr unsigned kFull = 0xffffffffu;
constexpr size_t kElementBytes = 2;  // bf16 and fp16 alike
static_assert(sizeof(__nv_bfloat16) == kElementBytes && sizeof(__half) == kElementBytes);

// T: the 16-bit storage type, __nv_bfloat16 or __half (WMMA has 16x16x16 fragments of both, with
// fp32 accumulators).
template <typename T>
using FragA = wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, T, wmma::row_major>;
template <typename T>
using FragBRow = wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T, wmma::row_major>;
template <typename T>
using FragBCol = wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, T, wmma::col_major>;
using FragC = wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float>;

// Shared-memory geometry for head dim HD, the same for both 16-bit types. Tile rows are HD + 8
// elements apart (WMMA wants a multiple of 8; the 8 of padding staggers the banks), fp32 output
// rows HD + 4 floats. Every region size is a multiple of 32 bytes, so fragment pointers stay
// 256-bit aligned.
template <int HD>
struct Geo {
  static_assert(HD == 64 || HD == 128, "tensor-core attention: hd 64 or 128");
  static constexpr int ld = HD + 8;   // 16-bit tile row (elements)
  static constexpr int old = HD + 4;  // fp32 output row (floats)
  static constexpr int frags = HD / kFrag;
  static constexpr size_t tile_bytes = size_t{kTile} * ld * kElementBytes;
  static constexpr size_t out_bytes = size_t{kTile} * old * sizeof(float);
  static constexpr size_t score_bytes = size_t{kTile} * kSld * sizeof(float);
  static constexpr size_t p_bytes = size_t{kTile} * kPld * kElementBytes;
  static_assert(out_bytes >= tile_bytes, "the forward stages Q in the output tile");
  static_assert(out_bytes <= 2 * tile_bytes, "the backward stages outputs in two tiles");
  static constexpr size_t forward_smem = 2 * tile_bytes + score_bytes + out_bytes;
  static constexpr size_t dkdv_smem = 4 * tile_bytes + score_bytes + p_bytes + 2 * kTile * 4;
  static constexpr size_t dq_smem = 4 * tile_bytes + score_bytes;
  static_assert(forward_smem <= 100 * 1024 && dkdv_smem <= 100 * 1024 && dq_smem <= 100 * 1024,
                "tensor-core attention: shared memory over 100 KB");
};

// tile[r][d] = src row (r0 + r), d in [0, HD), as 16-byte vectors; rows at or past s are zero.
// src and stride are 16-byte aligned (8 elements): the dispatch checks it.
template <int HD, typename T>
__device__ inline void load_tile(T* tile, const T* src, int64_t r0, int64_t s, int64_t stride) {
  constexpr int kVec = 8, per_row = HD / kVec;
  for (int idx = threadIdx.x; idx < kTile * per_row; idx += kThreads) {
    const int r = idx / per_row, c = (idx - r * per_row) * kVec;
    const int64_t row = r0 + r;
    uint4 val = make_uint4(0u, 0u, 0u, 0u);
    if (row < s) val = *reinterpret_cast<const uint4*>(src + row * stride + c);
    *reinterpret_cast<uint4*>(tile + r * Geo<HD>::ld + c) = val;
  }
}

// sw[16][kSld] (a warp's score rows) = A_w B^T over HD, A_w the warp's 16 rows of tile a, B the
// rows of tile b; 16-column blocks n with skip(n) are left unwritten (the caller masks them).
template <int HD, typename T, typename Skip>
__device__ inline void scores(float* sw, const T* aw, const T* b, Skip skip) {
  constexpr int ld = Geo<HD>::ld;
#pragma unroll
  for (int n = 0; n < kTileFrags; ++n) {
    if (skip(n)) continue;
    FragC acc;
    wmma::fill_fragment(acc, 0.0f);
#pragma unroll
    for (int kk = 0; kk < Geo<HD>::frags; ++kk) {
      FragA<T> af;
      FragBCol<T> bf;  // B^T[d][c] = b[c * ld + d]: column-major
      wmma::load_matrix_sync(af, aw + kk * kFrag, ld);
      wmma::load_matrix_sync(bf, b + n * kFrag * ld + kk * kFrag, ld);
      wmma::mma_sync(acc, af, bf, acc);
    }
    wmma::store_matrix_sync(sw + n * kFrag, acc, kSld, wmma::mem_row_major);
  }
}

// acc[n] += P_w[16][64] B[64][HD] for the HD/16 column blocks n; key blocks kk with skip(kk) are
// zero in P and skipped.
template <int HD, typename T, typename Skip>
__device__ inline void accumulate(FragC* acc, const T* pw, const T* b, Skip skip) {
  constexpr int ld = Geo<HD>::ld;
#pragma unroll
  for (int kk = 0; kk < kTileFrags; ++kk) {
    if (skip(kk)) continue;
    FragA<T> pf;
    wmma::load_matrix_sync(pf, pw + kk * kFrag, kPld);
#pragma unroll
    for (int n = 0; n < Geo<HD>::frags; ++n) {
      FragBRow<T> bf;
      wmma::load_matrix_sync(bf, b + kk * kFrag * ld + n * kFrag, ld);
      wmma::mma_sync(acc[n], pf, bf, acc[n]);
    }
  }
}

// Writes a warp's 16 rows of fp32 fragments (rows row0 .. row0 + 15 of dst, rows stride apart)
// in T, rounded once, through ow (16 rows of Geo<HD>::old floats). Rows at or past row_end
// (the end of the sequence) are not written.
template <int HD, typename T>
__device__ inline void store_rows(T* dst, int64_t stride, int64_t row0, int64_t row_end, float* ow,
                                  const FragC* acc) {
  constexpr int old = Geo<HD>::old;
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int n = 0; n < Geo<HD>::frags; ++n)
    wmma::store_matrix_sync(ow + n * kFrag, acc[n], old, wmma::mem_row_major);
  __syncwarp();
  const int r = lane >> 1, d0 = (lane & 1) * (HD / 2);
  const int64_t row = row0 + r;
  if (row < row_end) {
    T* o = dst + row * stride;
#pragma unroll 8
    for (int t = 0; t < HD / 2; ++t) o[d0 + t] = from_float<T>(ow[r * old + d0 + t]);
  }
  __syncwarp();
}

// ---- Forward ---------------------------------------------------------------------------------

template <int HD, typename T>
__global__ void __launch_bounds__(kThreads)
    tc_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, int64_t s, int nq,
                      int group, int64_t qkv_stride, int64_t out_stride, float scale) {
  using G = Geo<HD>;
  unsigned char* smem = dynamic_smem();
  T* ks = reinterpret_cast<T*>(smem);                        // [kTile][ld]
  T* vs = ks + kTile * G::ld;                                // [kTile][ld]
  float* sc = reinterpret_cast<float*>(vs + kTile * G::ld);  // [kTile][kSld]
  float* os = sc + kTile * kSld;                             // [kTile][old]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;  // the last query tiles see the most keys
  const int h = blockIdx.y, g = h / group;
  const int64_t bi = blockIdx.z, i0 = qt * kTile;
  const T* qb = q + bi * s * qkv_stride + static_cast<int64_t>(h) * HD;
  const T* kb = k + bi * s * qkv_stride + static_cast<int64_t>(g) * HD;
  const T* vb = v + bi * s * qkv_stride + static_cast<int64_t>(g) * HD;
  float* sw = sc + warp * kFrag * kSld;    // this warp's 16 score rows
  T* pw = reinterpret_cast<T*>(sw);        // its probabilities, in T, over the read scores
  float* ow = os + warp * kFrag * G::old;  // its 16 output rows

  // Q is staged through the output tile and kept in fragments.
  T* qs = reinterpret_cast<T*>(os);
  load_tile<HD>(qs, qb, i0, s, qkv_stride);
  __syncthreads();
  FragA<T> qf[G::frags];
#pragma unroll
  for (int kk = 0; kk < G::frags; ++kk)
    wmma::load_matrix_sync(qf[kk], qs + warp * kFrag * G::ld + kk * kFrag, G::ld);
  __syncthreads();  // every warp holds its Q before the tile becomes the accumulator
  for (int idx = threadIdx.x; idx < kTile * G::old; idx += kThreads) os[idx] = 0.0f;

  const int r = lane >> 1, c0 = (lane & 1) * kHalf;  // this lane's row and score columns
  const int64_t row = i0 + warp * kFrag + r;
  const int64_t warp_last = i0 + warp * kFrag + kFrag - 1;  // the warp's last query
  float m = -INFINITY, l = 0.0f;
  const int64_t last_row = (i0 + kTile < s ? i0 + kTile : s) - 1;
  for (int64_t j0 = 0; j0 <= last_row; j0 += kTile) {  // causal: key tiles up to the diagonal
    __syncthreads();  // the previous K/V tile and every warp's P are no longer read
    load_tile<HD>(ks, kb, j0, s, qkv_stride);
    load_tile<HD>(vs, vb, j0, s, qkv_stride);
    __syncthreads();
    // A 16-key block wholly after the warp's last query is masked: skipped.
    const auto above = [&](int n) { return j0 + n * kFrag > warp_last; };
    // S = Q K^T, the warp's 16 rows.
    {
      FragC acc;
#pragma unroll
      for (int n = 0; n < kTileFrags; ++n) {
        if (above(n)) continue;
        wmma::fill_fragment(acc, 0.0f);
#pragma unroll
        for (int kk = 0; kk < G::frags; ++kk) {
          FragBCol<T> kf;  // K^T[d][c] = ks[c * ld + d]
          wmma::load_matrix_sync(kf, ks + n * kFrag * G::ld + kk * kFrag, G::ld);
          wmma::mma_sync(acc, qf[kk], kf, acc);
        }
        wmma::store_matrix_sync(sw + n * kFrag, acc, kSld, wmma::mem_row_major);
      }
    }
    __syncwarp();
    // Online softmax in fp32, two lanes per row (lane ^ 1 holds the other half).
    float p[kHalf];
    float mx = -INFINITY;
#pragma unroll
    for (int t = 0; t < kHalf; ++t) {
      const int64_t col = j0 + c0 + t;
      p[t] = col <= row && row < s ? scale * sw[r * kSld + c0 + t] : -INFINITY;
      mx = fmaxf(mx, p[t]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
    const float mnew = fmaxf(m, mx);
    // mnew is -inf only for a row with no key yet (rows past s): nothing to add or rescale.
    const float corr = mnew == -INFINITY ? 1.0f : expf(m - mnew);
    float sum = 0.0f;
#pragma unroll
    for (int t = 0; t < kHalf; ++t) {
      p[t] = mnew == -INFINITY ? 0.0f : expf(p[t] - mnew);
      sum += p[t];
    }
    sum += __shfl_xor_sync(kFull, sum, 1);
    l = l * corr + sum;
    m = mnew;
    __syncwarp();  // every lane has read its scores before P overwrites them
#pragma unroll
    for (int t = 0; t < kHalf; ++t) pw[r * kPld + c0 + t] = from_float<T>(p[t]);
    const int d0 = (lane & 1) * (HD / 2);
#pragma unroll 8
    for (int t = 0; t < HD / 2; ++t) ow[r * G::old + d0 + t] *= corr;
    __syncwarp();
    // O += P V on the rescaled accumulator.
#pragma unroll
    for (int n = 0; n < G::frags; ++n) {
      FragC acc;
      wmma::load_matrix_sync(acc, ow + n * kFrag, G::old, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTileFrags; ++kk) {
        if (above(kk)) continue;
        FragA<T> pf;
        FragBRow<T> vf;  // V[c][d] = vs[c * ld + d]
        wmma::load_matrix_sync(pf, pw + kk * kFrag, kPld);
        wmma::load_matrix_sync(vf, vs + kk * kFrag * G::ld + n * kFrag, G::ld);
        wmma::mma_sync(acc, pf, vf, acc);
      }
      wmma::store_matrix_sync(ow + n * kFrag, acc, G::old, wmma::mem_row_major);
    }
  }
  __syncwarp();

  if (row < s) {
    const float inv = 1.0f / l;
    T* o = out + (bi * s + row) * out_stride + static_cast<int64_t>(h) * HD;
    const int d0 = (lane & 1) * (HD / 2);
#pragma unroll 8
    for (int t = 0; t < HD / 2; ++t) o[d0 + t] = from_float<T>(ow[r * G::old + d0 + t] * inv);
    if ((lane & 1) == 0) lse[(bi * nq + h) * s + row] = m + logf(l);
  }
}

// ---- Backward --------------------------------------------------------------------------------

// dk, dv of one key tile of one kv head, summed over the group's query heads and the query tiles
// at or below the diagonal, in that fixed order. Warp w owns keys w*16 .. w*16+15: it computes
// S^T = K Q^T and dP^T = V dO^T for them (16 keys x 64 queries), then dV += P^T dO, dK += dS^T Q.
template <int HD, typename T>
__global__ void __launch_bounds__(kThreads)
    tc_dkdv_kernel(T* dk, T* dv, const T* dout, const float* lse, const float* D, const T* q,
                   const T* k, const T* v, int64_t s, int nq, int group, int64_t qkv_stride,
                   int64_t out_stride, float scale) {
  using G = Geo<HD>;
  unsigned char* smem = dynamic_smem();
  T* ks = reinterpret_cast<T*>(smem);                         // [kTile][ld]
  T* vs = ks + kTile * G::ld;                                 // [kTile][ld]
  T* qs = vs + kTile * G::ld;                                 // [kTile][ld]
  T* dos = qs + kTile * G::ld;                                // [kTile][ld]
  float* sc = reinterpret_cast<float*>(dos + kTile * G::ld);  // [kTile][kSld]
  T* pt = reinterpret_cast<T*>(sc + kTile * kSld);            // [kTile][kPld] P^T
  float* ls = reinterpret_cast<float*>(pt + kTile * kPld);    // [kTile] lse of the query tile
  float* Ds = ls + kTile;                                     // [kTile] D of the query tile
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t kt = blockIdx.x;  // early key tiles see the most queries: launched first
  const int g = blockIdx.y;
  const int64_t bi = blockIdx.z, j0 = kt * kTile;
  load_tile<HD>(ks, k + bi * s * qkv_stride + static_cast<int64_t>(g) * HD, j0, s, qkv_stride);
  load_tile<HD>(vs, v + bi * s * qkv_stride + static_cast<int64_t>(g) * HD, j0, s, qkv_stride);
  float* sw = sc + warp * kFrag * kSld;  // this warp's 16 score rows (keys)
  T* dsw = reinterpret_cast<T*>(sw);     // its dS^T, in T, over the read scores
  T* ptw = pt + warp * kFrag * kPld;     // its P^T rows
  const T* kw = ks + warp * kFrag * G::ld;
  const T* vw = vs + warp * kFrag * G::ld;

  FragC dkf[G::frags], dvf[G::frags];
#pragma unroll
  for (int n = 0; n < G::frags; ++n) {
    wmma::fill_fragment(dkf[n], 0.0f);
    wmma::fill_fragment(dvf[n], 0.0f);
  }
  const int r = lane >> 1, c0 = (lane & 1) * kHalf;  // this lane's key row and query columns
  const int64_t key = j0 + warp * kFrag + r;
  const int64_t warp_first = j0 + warp * kFrag;  // the warp's first key

  for (int h = g * group; h < (g + 1) * group; ++h) {
    const T* qb = q + bi * s * qkv_stride + static_cast<int64_t>(h) * HD;
    const T* dob = dout + bi * s * out_stride + static_cast<int64_t>(h) * HD;
    const float* lse_h = lse + (bi * nq + h) * s;
    const float* D_h = D + (bi * nq + h) * s;
    for (int64_t i0 = j0; i0 < s; i0 += kTile) {  // query tiles at or below the diagonal
      __syncthreads();  // the previous Q/dO tile, lse and D are no longer read
      load_tile<HD>(qs, qb, i0, s, qkv_stride);
      load_tile<HD>(dos, dob, i0, s, out_stride);
      for (int idx = threadIdx.x; idx < kTile; idx += kThreads) {
        ls[idx] = i0 + idx < s ? lse_h[i0 + idx] : 0.0f;
        Ds[idx] = i0 + idx < s ? D_h[i0 + idx] : 0.0f;
      }
      __syncthreads();
      // A 16-query block wholly before the warp's first key is masked: skipped.
      const auto before = [&](int n) { return i0 + n * kFrag + kFrag - 1 < warp_first; };
      scores<HD>(sw, kw, qs, before);  // S^T = K Q^T
      __syncwarp();
      float p[kHalf];
#pragma unroll
      for (int t = 0; t < kHalf; ++t) {
        const int64_t qi = i0 + c0 + t;
        p[t] = key <= qi && qi < s ? expf(scale * sw[r * kSld + c0 + t] - ls[c0 + t]) : 0.0f;
        ptw[r * kPld + c0 + t] = from_float<T>(p[t]);
      }
      __syncwarp();                     // every lane has read its scores
      scores<HD>(sw, vw, dos, before);  // dP^T = V dO^T
      __syncwarp();
      // dS^T; masked entries are selected, not multiplied: a skipped block's scores are stale.
#pragma unroll
      for (int t = 0; t < kHalf; ++t) {
        const int64_t qi = i0 + c0 + t;
        p[t] = key <= qi && qi < s ? p[t] * (sw[r * kSld + c0 + t] - Ds[c0 + t]) * scale : 0.0f;
      }
      __syncwarp();  // every lane has read dP^T before dS^T overwrites it
#pragma unroll
      for (int t = 0; t < kHalf; ++t) dsw[r * kPld + c0 + t] = from_float<T>(p[t]);
      __syncwarp();
      accumulate<HD>(dvf, ptw, dos, before);  // dV += P^T dO
      accumulate<HD>(dkf, dsw, qs, before);   // dK += dS^T Q
    }
  }

  __syncthreads();  // Q/dO are no longer read: they stage the outputs
  float* ow = reinterpret_cast<float*>(qs) + warp * kFrag * G::old;
  const int64_t row0 = bi * s + j0 + warp * kFrag;  // the warp's first key, as a global row
  const int64_t goff = static_cast<int64_t>(g) * HD;
  store_rows<HD>(dv + goff, qkv_stride, row0, bi * s + s, ow, dvf);
  store_rows<HD>(dk + goff, qkv_stride, row0, bi * s + s, ow, dkf);
}

// dq of one query tile of one head over the key tiles at or below the diagonal. Warp w owns
// queries w*16 .. w*16+15: S = Q K^T, dP = dO V^T, then dQ += dS K.
template <int HD, typename T>
__global__ void __launch_bounds__(kThreads)
    tc_dq_kernel(T* dq, const T* dout, const float* lse, const float* D, const T* q, const T* k,
                 const T* v, int64_t s, int nq, int group, int64_t qkv_stride, int64_t out_stride,
                 float scale) {
  using G = Geo<HD>;
  unsigned char* smem = dynamic_smem();
  T* ks = reinterpret_cast<T*>(smem);                         // [kTile][ld]
  T* vs = ks + kTile * G::ld;                                 // [kTile][ld]
  T* qs = vs + kTile * G::ld;                                 // [kTile][ld]
  T* dos = qs + kTile * G::ld;                                // [kTile][ld]
  float* sc = reinterpret_cast<float*>(dos + kTile * G::ld);  // [kTile][kSld]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;
  const int h = blockIdx.y, g = h / group;
  const int64_t bi = blockIdx.z, i0 = qt * kTile;
  const T* kb = k + bi * s * qkv_stride + static_cast<int64_t>(g) * HD;
  const T* vb = v + bi * s * qkv_stride + static_cast<int64_t>(g) * HD;
  load_tile<HD>(qs, q + bi * s * qkv_stride + static_cast<int64_t>(h) * HD, i0, s, qkv_stride);
  load_tile<HD>(dos, dout + bi * s * out_stride + static_cast<int64_t>(h) * HD, i0, s, out_stride);
  float* sw = sc + warp * kFrag * kSld;  // this warp's 16 score rows (queries)
  T* dsw = reinterpret_cast<T*>(sw);     // its dS, in T, over the read scores
  const T* qw = qs + warp * kFrag * G::ld;
  const T* dow = dos + warp * kFrag * G::ld;

  const int r = lane >> 1, c0 = (lane & 1) * kHalf;  // this lane's query row and key columns
  const int64_t row = i0 + warp * kFrag + r;
  const float lrow = row < s ? lse[(bi * nq + h) * s + row] : 0.0f;
  const float Drow = row < s ? D[(bi * nq + h) * s + row] : 0.0f;
  const int64_t warp_last = i0 + warp * kFrag + kFrag - 1;  // the warp's last query
  FragC dqf[G::frags];
#pragma unroll
  for (int n = 0; n < G::frags; ++n) wmma::fill_fragment(dqf[n], 0.0f);

  const int64_t last_row = (i0 + kTile < s ? i0 + kTile : s) - 1;
  for (int64_t j0 = 0; j0 <= last_row; j0 += kTile) {
    __syncthreads();  // the previous K/V tile is no longer read (and Q/dO are loaded)
    load_tile<HD>(ks, kb, j0, s, qkv_stride);
    load_tile<HD>(vs, vb, j0, s, qkv_stride);
    __syncthreads();
    const auto above = [&](int n) { return j0 + n * kFrag > warp_last; };
    scores<HD>(sw, qw, ks, above);  // S = Q K^T
    __syncwarp();
    float p[kHalf];
#pragma unroll
    for (int t = 0; t < kHalf; ++t) {
      const int64_t col = j0 + c0 + t;
      p[t] = col <= row && row < s ? expf(scale * sw[r * kSld + c0 + t] - lrow) : 0.0f;
    }
    __syncwarp();                    // every lane has read its scores
    scores<HD>(sw, dow, vs, above);  // dP = dO V^T
    __syncwarp();
    // dS; masked entries are selected, not multiplied: a skipped block's scores are stale.
#pragma unroll
    for (int t = 0; t < kHalf; ++t) {
      const int64_t col = j0 + c0 + t;
      p[t] = col <= row && row < s ? p[t] * (sw[r * kSld + c0 + t] - Drow) * scale : 0.0f;
    }
    __syncwarp();  // every lane has read dP before dS overwrites it
#pragma unroll
    for (int t = 0; t < kHalf; ++t) dsw[r * kPld + c0 + t] = from_float<T>(p[t]);
    __syncwarp();
    accumulate<HD>(dqf, dsw, ks, above);  // dQ += dS K
  }

  __syncthreads();  // K/V are no longer read: they stage dq
  float* ow = reinterpret_cast<float*>(ks) + warp * kFrag * G::old;
  store_rows<HD>(dq + static_cast<int64_t>(h) * HD, qkv_stride, bi * s + i0 + warp * kFrag,
                 bi * s + s, ow, dqf);
}

}  // namespace mds::ops::cuda::tc
