// The backward of the FA2 attention (attention_mma.cuh has the fragments, the shared-memory layout
// and the contract). D = rowsum(dout * out) comes first (attention_d.cuh, fp32); then two kernels,
// as in attention_tc.cu, so that each gradient is owned by one block and summed in a fixed order
// (no atomics, deterministic):
//   dk/dv: a block per (64 keys, kv head, batch) over the group's query heads and, for each, the
//          query tiles at or below the diagonal, in that order. Warp w owns keys w*16 .. w*16+15:
//          S^T = K_w Q^T and dP^T = V_w dO^T (16 keys x 64 queries, C fragments), then
//          P^T = exp(S^T scale - lse), dS^T = P^T (dP^T - D) scale, and with the C -> A trick
//          dV += P^T dO, dK += dS^T Q (dO and Q read with ldmatrix .trans).
//   dq:    a block per (64 queries, head, batch) over the key tiles up to the diagonal. Warp w
//          owns queries w*16 .. w*16+15: S = Q_w K^T, dP = dO_w V^T, then dQ += dS K (K .trans).
// The accumulators (dK and dV, or dQ: 16 x HD fp32 per warp) stay in registers for the whole loop
// and are rounded to T once at the end. P and dS are rounded to T to enter the tensor cores; the
// fp32 P makes dS, as in the WMMA kernels. Masked entries are selected, not multiplied (a masked
// exp may overflow).
//
// Pipelining: the operand that changes along the loop (Q, dO, lse, D for dk/dv; K, V for dq) is
// double buffered: the copies of stage n + 1 are issued before stage n is computed, whose own
// group is waited for with cp.async.wait_group 1; a barrier at the end of each stage frees its
// buffer for stage n + 2. Shared memory (hd 128): K, V [64][136] and two of Q, dO [64][136]
// (+ lse, D) = 103 KB, two blocks per SM (registers allow two as well).
#pragma once

#include "mds/ops/cuda/attention_mma.cuh"

namespace mds::ops::cuda::fa2 {

// P and dS of one 16 x 64 slice in C fragments: sc holds the scores on entry and P on return, dp
// holds dP on entry and dS on return. For C element i of block n: row = this lane's row g + 8
// (i >> 1), column = n * 8 + 2 t + (i & 1). lse2(hf, c) is lse * log2(e) and d(hf, c) is D for
// that entry (rows hf = i >> 1, column c); valid(hf, c) tells whether it is unmasked.
template <int N, typename Lse, typename Dv, typename Valid>
__device__ __forceinline__ void softmax_grad(float (&sc)[N / 8][4], float (&dp)[N / 8][4],
                                             float scale, float scale_log2, int lane, Lse lse2,
                                             Dv d, Valid valid) {
  const int t = lane & 3;
#pragma unroll
  for (int n = 0; n < N / 8; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int hf = i >> 1, c = n * 8 + 2 * t + (i & 1);
      const bool ok = valid(hf, c);
      const float p = exp2f(fmaf(sc[n][i], scale_log2, -lse2(hf, c)));
      sc[n][i] = ok ? p : 0.0f;
      dp[n][i] = ok ? p * (dp[n][i] - d(hf, c)) * scale : 0.0f;
    }
}

// dk, dv of one key tile of one kv head (see above).
template <int HD, typename T>
__global__ void __launch_bounds__(kThreads)
    fa2_dkdv_kernel(T* dk, T* dv, const T* dout, const float* lse, const float* D, const T* q,
                    const T* k, const T* v, int64_t s, int nq, int group, int64_t qkv_stride,
                    int64_t out_stride, float scale, float scale_log2) {
  constexpr int ld = Geo<HD>::ld, kB = kBwdTile, kDb = HD / 8;
  T* ks = reinterpret_cast<T*>(dynamic_smem());             // [kB][ld]
  T* vs = ks + kB * ld;                                     // [kB][ld]
  T* qs = vs + kB * ld;                                     // [2][kB][ld]
  T* dos = qs + 2 * kB * ld;                                // [2][kB][ld]
  float* ls = reinterpret_cast<float*>(dos + 2 * kB * ld);  // [2][kB] lse of the query tile
  float* ds = ls + 2 * kB;                                  // [2][kB] D of the query tile
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  const int64_t kt = blockIdx.x;  // early key tiles see the most queries: launched first
  const int kvh = blockIdx.y;
  const int64_t bi = blockIdx.z, j0 = kt * kB;
  const int64_t per_head = gridDim.x - kt;  // query tiles at or below the diagonal
  const int64_t stages = per_head * group;
  const int64_t goff = static_cast<int64_t>(kvh) * HD;
  load_tile<kB, HD>(ks, k + bi * s * qkv_stride + goff, j0, s, qkv_stride);
  load_tile<kB, HD>(vs, v + bi * s * qkv_stride + goff, j0, s, qkv_stride);

  // Stage n: query head kvh * group + n / per_head, query tile kt + n % per_head, into buffer n
  // & 1.
  const auto issue = [&](int64_t n) {
    const int64_t h = kvh * group + n / per_head, i0 = (kt + n % per_head) * kB;
    const int buf = static_cast<int>(n & 1);
    load_tile<kB, HD>(qs + buf * kB * ld, q + bi * s * qkv_stride + h * HD, i0, s, qkv_stride);
    load_tile<kB, HD>(dos + buf * kB * ld, dout + bi * s * out_stride + h * HD, i0, s, out_stride);
    const int idx = threadIdx.x & (kB - 1);  // threads 0..63: lse, 64..127: D
    const float* src = (threadIdx.x < kB ? lse : D) + (bi * nq + h) * s;
    const bool valid = i0 + idx < s;
    cp_async_4((threadIdx.x < kB ? ls : ds) + buf * kB + idx, valid ? src + i0 + idx : src, valid);
  };
  static_assert(kThreads == 2 * kBwdTile, "one thread per lse and per D entry");
  issue(0);
  cp_async_commit();

  const T* kw = ks + warp * 16 * ld;  // the warp's keys
  const T* vw = vs + warp * 16 * ld;
  const int64_t key0 = j0 + warp * 16;  // its first key
  float dka[1][kDb][4] = {}, dva[1][kDb][4] = {};
  for (int64_t n = 0; n < stages; ++n) {
    if (n + 1 < stages) issue(n + 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();  // stage n (and K, V) have landed
    const int buf = static_cast<int>(n & 1);
    const T* qn = qs + buf * kB * ld;
    const T* don = dos + buf * kB * ld;
    const float* ln = ls + buf * kB;
    const float* dn = ds + buf * kB;
    const int64_t i0 = (kt + n % per_head) * kB;
    float st[1][kB / 8][4] = {}, dpt[1][kB / 8][4] = {};
    mma_abt<1, kB, HD>(st, kw, qn, lane);    // S^T = K_w Q^T   [16 keys][64 queries]
    mma_abt<1, kB, HD>(dpt, vw, don, lane);  // dP^T = V_w dO^T
    // Unmasked unless the tile holds the diagonal or the end of the sequence.
    const bool edge = i0 < key0 + 15 || i0 + kB > s;
    const auto lse2 = [&](int, int c) { return lds(ln + c) * kLog2e; };
    const auto dval = [&](int, int c) { return lds(dn + c); };
    const auto valid = [&](int hf, int c) {
      const int64_t query = i0 + c, key = key0 + g + 8 * hf;
      return !edge || (query >= key && query < s);
    };
    softmax_grad<kB>(st[0], dpt[0], scale, scale_log2, lane, lse2, dval, valid);
    uint32_t pa[1][kB / 16][4], dsa[1][kB / 16][4];
#pragma unroll
    for (int kk = 0; kk < kB / 16; ++kk) {
      to_a<T>(pa[0][kk], st[0][2 * kk], st[0][2 * kk + 1]);
      to_a<T>(dsa[0][kk], dpt[0][2 * kk], dpt[0][2 * kk + 1]);
    }
    mma_ab<1, kB, HD>(dva, pa, don, lane);  // dV += P^T dO
    mma_ab<1, kB, HD>(dka, dsa, qn, lane);  // dK += dS^T Q
    __syncthreads();  // every warp is done with buffer buf: stage n + 2 may overwrite it
  }

  const float one[2] = {1.0f, 1.0f};
  const int64_t row_end = bi * s + s;
  store_slice<HD>(dv + goff, qkv_stride, bi * s + key0, row_end, dva[0], one, lane);
  store_slice<HD>(dk + goff, qkv_stride, bi * s + key0, row_end, dka[0], one, lane);
}

// dq of one query tile of one head (see above).
template <int HD, typename T>
__global__ void __launch_bounds__(kThreads)
    fa2_dq_kernel(T* dq, const T* dout, const float* lse, const float* D, const T* q, const T* k,
                  const T* v, int64_t s, int nq, int group, int64_t qkv_stride, int64_t out_stride,
                  float scale, float scale_log2) {
  constexpr int ld = Geo<HD>::ld, kB = kBwdTile, kDb = HD / 8;
  T* qs = reinterpret_cast<T*>(dynamic_smem());  // [kB][ld]
  T* dos = qs + kB * ld;                         // [kB][ld]
  T* ks = dos + kB * ld;                         // [2][kB][ld]
  T* vs = ks + 2 * kB * ld;                      // [2][kB][ld]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;  // the last query tiles see the most keys
  const int h = blockIdx.y;
  const int64_t bi = blockIdx.z, i0 = qt * kB;
  const int64_t goff = static_cast<int64_t>(h / group) * HD;
  const T* kb = k + bi * s * qkv_stride + goff;
  const T* vb = v + bi * s * qkv_stride + goff;
  load_tile<kB, HD>(qs, q + bi * s * qkv_stride + static_cast<int64_t>(h) * HD, i0, s, qkv_stride);
  load_tile<kB, HD>(dos, dout + bi * s * out_stride + static_cast<int64_t>(h) * HD, i0, s,
                    out_stride);
  load_tile<kB, HD>(ks, kb, 0, s, qkv_stride);
  load_tile<kB, HD>(vs, vb, 0, s, qkv_stride);
  cp_async_commit();

  const int64_t row0 = i0 + warp * 16;  // the warp's first query
  float lse2[2], drow[2];               // of rows row0 + g and row0 + g + 8
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int64_t row = row0 + g + 8 * hf;
    lse2[hf] = row < s ? lse[(bi * nq + h) * s + row] * kLog2e : 0.0f;
    drow[hf] = row < s ? D[(bi * nq + h) * s + row] : 0.0f;
  }
  const T* qw = qs + warp * 16 * ld;
  const T* dow = dos + warp * 16 * ld;
  float dqa[1][kDb][4] = {};
  const int64_t tiles = qt + 1;  // key tiles up to the diagonal (query and key tiles align)
  for (int64_t jt = 0; jt < tiles; ++jt) {
    if (jt + 1 < tiles) {
      const int nb = static_cast<int>((jt + 1) & 1);
      load_tile<kB, HD>(ks + nb * kB * ld, kb, (jt + 1) * kB, s, qkv_stride);
      load_tile<kB, HD>(vs + nb * kB * ld, vb, (jt + 1) * kB, s, qkv_stride);
    }
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();  // K(jt), V(jt) (and Q, dO) have landed
    const int buf = static_cast<int>(jt & 1);
    const T* kn = ks + buf * kB * ld;
    const T* vn = vs + buf * kB * ld;
    const int64_t j0 = jt * kB;
    float sc[1][kB / 8][4] = {}, dp[1][kB / 8][4] = {};
    mma_abt<1, kB, HD>(sc, qw, kn, lane);   // S = Q_w K^T   [16 queries][64 keys]
    mma_abt<1, kB, HD>(dp, dow, vn, lane);  // dP = dO_w V^T
    const bool diagonal = j0 + kB - 1 > row0;
    const auto lse_row = [&](int hf, int) { return lse2[hf]; };
    const auto d_row = [&](int hf, int) { return drow[hf]; };
    // Rows past s compute on zeros (finite) and are not stored: only the causal mask matters.
    const auto valid = [&](int hf, int c) { return !diagonal || j0 + c <= row0 + g + 8 * hf; };
    softmax_grad<kB>(sc[0], dp[0], scale, scale_log2, lane, lse_row, d_row, valid);
    uint32_t dsa[1][kB / 16][4];
#pragma unroll
    for (int kk = 0; kk < kB / 16; ++kk) to_a<T>(dsa[0][kk], dp[0][2 * kk], dp[0][2 * kk + 1]);
    mma_ab<1, kB, HD>(dqa, dsa, kn, lane);  // dQ += dS K
    __syncthreads();  // every warp is done with buffer buf: tile jt + 2 may overwrite it
  }

  const float one[2] = {1.0f, 1.0f};
  store_slice<HD>(dq + static_cast<int64_t>(h) * HD, qkv_stride, bi * s + row0, bi * s + s, dqa[0],
                  one, lane);
}

}  // namespace mds::ops::cuda::fa2
