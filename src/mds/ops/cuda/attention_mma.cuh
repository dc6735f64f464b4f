// FlashAttention-2 style causal grouped-query attention on 16-bit storage (bf16 or fp16, the
// kernels templated on T), hd 64 or 128, with mma.sync m16n8k16 (mma.cuh): the scores S, the
// probabilities P and the output accumulator live in registers for the whole key loop, nothing of
// them goes through shared memory. The contract is attention_tc.cu's (ops_cuda.h): q, k, v rows
// qkv_stride apart, out/dout rows out_stride apart, lse [b, nq, s] = m + log(l) (natural log),
// scale 1/sqrt(hd), query head j reading kv head j / (nq / nkv), deterministic; P and dS rounded
// to T to enter the tensor cores; l, lse and D in fp32; each 16-bit output rounded once.
//
// Register trick (Dao, "FlashAttention-2", 2023, section 3): a warp owns 16-row slices of the
// query tile. S = Q K^T of a slice is a row of 16 x 8 C fragments (fp32); the 4 lanes of a quad
// (lane / 4 = g) hold rows g and g + 8, so a row's max and sum take two __shfl_xor_sync (1, 2).
// Two adjacent C fragments, converted pairwise to T, are the A fragment of P over those 16 keys,
// so O += P V needs no data movement. The online softmax runs in base 2 (exp2f of
// s * scale * log2(e) - m), the per-lane partial row sums are combined once at the end.
//
// Tiles. Forward: a block of 4 warps per (128 queries, head, batch); each warp owns 32 query rows
// (two 16-row slices, so every K / V fragment read from shared memory feeds two products: 32
// flops per byte of ldmatrix traffic, what an SM's tensor cores need from its 128 B/clk); the keys
// come in tiles of 64. Registers (hd 128): O 2 x 16 x 4 + S 2 x 8 x 4 fp32 per lane, within 255;
// Q is re-read from shared memory for each key tile (FA2's default) rather than held. Backward
// (attention_mma_bwd.cuh): tiles of 64 x 64, each warp 16 rows.
//
// Shared memory: tiles of rows of HD elements, HD + 8 apart. ldmatrix reads 8 rows of 16 bytes
// per matrix; with a row pitch of HD * 2 + 16 bytes (HD * 2 a multiple of 128), those 8 rows fall
// in 8 different 16-byte bank groups: conflict-free, as an XOR swizzle would be, for 6 % (hd 128)
// or 12 % (hd 64) more space. Loads are 16-byte cp.async (.cg, zero-filled past the sequence, so
// no NaN can enter a product). Forward: Q [128][HD+8], K and V [64][HD+8] each (69.6 KB at hd
// 128, two blocks per SM by registers); FA2's schedule overlaps the copies with the products:
//   wait K(j), sync | issue V(j) | S = Q K(j)^T | wait V(j), sync | issue K(j+1) | softmax, O += P
//   V
// so each tile lands while the other one is in use, with one buffer each.
//
// Causal: key tiles up to the block's last query; a warp whose rows all precede a tile skips its
// products (it still meets the barriers); the mask (key > query: -inf) runs only on tiles that
// cross the warp's diagonal. Rows past the sequence compute on zeros and are never stored.
#pragma once

#include <cmath>
#include <cstdint>

#include "mds/ops/cuda/common.cuh"
#include "mds/ops/cuda/mma.cuh"

namespace mds::ops::cuda::fa2 {

constexpr int kWarps = 4;                             // warps per block
constexpr int kThreads = kWarps * 32;                 // threads per block
constexpr int kFwdRows = 128;                         // forward query tile: 4 warps x 32 rows
constexpr int kFwdSlices = kFwdRows / (kWarps * 16);  // 16-row slices per warp (2)
constexpr int kKeys = 64;                             // forward key tile
constexpr int kBwdTile = 64;  // backward query and key tiles: 4 warps x 16 rows
constexpr int kPad = 8;       // elements of padding per shared-memory row (16 bytes)
constexpr unsigned kFull = 0xffffffffu;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Shared-memory geometry for head dim HD (both 16-bit types): tiles of rows ld elements apart.
template <int HD>
struct Geo {
  static_assert(HD == 64 || HD == 128, "mma attention: hd 64 or 128");
  static constexpr int ld = HD + kPad;
  static constexpr size_t row_bytes = size_t{ld} * 2;
  static constexpr size_t forward_smem = (kFwdRows + 2 * kKeys) * row_bytes;
  // K, V, then two buffers of Q and dO; lse and D of both stages (fp32).
  static constexpr size_t dkdv_smem = 6 * kBwdTile * row_bytes + 4 * kBwdTile * sizeof(float);
  // Q, dO, then two buffers of K and V.
  static constexpr size_t dq_smem = 6 * kBwdTile * row_bytes;
  static_assert(forward_smem <= 113 * 1024 && dkdv_smem <= 113 * 1024,
                "mma attention: two blocks per SM need at most 113 KB each");
};

// tile[r][d] = src row (r0 + r), d in [0, HD), for r in [0, ROWS), by 16-byte cp.async; rows at
// or past s are zeros. src and stride are 16-byte aligned (the dispatch checks it). The caller
// commits the group.
template <int ROWS, int HD, typename T>
__device__ __forceinline__ void load_tile(T* tile, const T* src, int64_t r0, int64_t s,
                                          int64_t stride) {
  constexpr int kVec = 8, per_row = HD / kVec;
  static_assert(ROWS * per_row % kThreads == 0, "every thread issues the same number of copies");
#pragma unroll
  for (int it = 0; it < ROWS * per_row / kThreads; ++it) {
    const int idx = it * kThreads + static_cast<int>(threadIdx.x);
    const int r = idx / per_row, c = (idx % per_row) * kVec;
    const int64_t row = r0 + r;
    const bool valid = row < s;
    cp_async_16(tile + r * Geo<HD>::ld + c, valid ? src + row * stride + c : src, valid);
  }
}

// acc[mt][n] (16 x 8 C fragments) += A B^T over k in [0, HD): A = SLICES 16-row slices of the tile
// at a (row-major, rows mt * 16 ..), B^T = the tile at b transposed (b row-major [N][HD], rows the
// output columns). Each B fragment loaded serves every slice.
template <int SLICES, int N, int HD, typename T>
__device__ __forceinline__ void mma_abt(float (&acc)[SLICES][N / 8][4], const T* a, const T* b,
                                        int lane) {
  constexpr int ld = Geo<HD>::ld;
#pragma unroll
  for (int kk = 0; kk < HD / 16; ++kk) {
    uint32_t af[SLICES][4];
#pragma unroll
    for (int mt = 0; mt < SLICES; ++mt)
      ldmatrix_x4(af[mt], a + (mt * 16 + (lane & 15)) * ld + kk * 16 + (lane >> 4) * 8);
#pragma unroll
    for (int np = 0; np < N / 16; ++np) {
      // Rows np*16 + 0..7 (b[0], b[1]: k 0..7, 8..15), then np*16 + 8..15 (b[2], b[3]).
      uint32_t bf[4];
      ldmatrix_x4(bf, b + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * ld + kk * 16 +
                          ((lane >> 3) & 1) * 8);
#pragma unroll
      for (int mt = 0; mt < SLICES; ++mt) {
        mma_m16n8k16<T>(acc[mt][2 * np], af[mt], bf[0], bf[1]);
        mma_m16n8k16<T>(acc[mt][2 * np + 1], af[mt], bf[2], bf[3]);
      }
    }
  }
}

// acc[mt][n] (16 x 8 C fragments over HD columns) += P B: P = A fragments p[mt][kk] over K rows of
// B, B = the tile at b (row-major [K][HD]), read transposed by ldmatrix .trans.
template <int SLICES, int K, int HD, typename T>
__device__ __forceinline__ void mma_ab(float (&acc)[SLICES][HD / 8][4],
                                       const uint32_t (&p)[SLICES][K / 16][4], const T* b,
                                       int lane) {
  constexpr int ld = Geo<HD>::ld;
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
#pragma unroll
    for (int dp = 0; dp < HD / 16; ++dp) {
      // Matrices: rows kk*16 + 0..7 and + 8..15 of columns dp*16 + 0..7 (b[0], b[1]), then of
      // columns dp*16 + 8..15 (b[2], b[3]).
      uint32_t bf[4];
      ldmatrix_x4_trans(
          bf, b + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * ld + dp * 16 + (lane >> 4) * 8);
#pragma unroll
      for (int mt = 0; mt < SLICES; ++mt) {
        mma_m16n8k16<T>(acc[mt][2 * dp], p[mt][kk], bf[0], bf[1]);
        mma_m16n8k16<T>(acc[mt][2 * dp + 1], p[mt][kk], bf[2], bf[3]);
      }
    }
  }
}

// The A fragment (16 x 16, in T) of two adjacent C fragments (16 x 8 each, fp32).
template <typename T>
__device__ __forceinline__ void to_a(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = pack2<T>(lo[0], lo[1]);
  a[1] = pack2<T>(lo[2], lo[3]);
  a[2] = pack2<T>(hi[0], hi[1]);
  a[3] = pack2<T>(hi[2], hi[3]);
}

// Stores a slice's C fragments acc[HD/8] (rows g and g + 8 of this lane) times row_scale[hf] in T,
// rounded once, to rows row0 + g + 8 hf of dst (rows stride apart, from column 0); rows at or past
// row_end are not written.
template <int HD, typename T>
__device__ __forceinline__ void store_slice(T* dst, int64_t stride, int64_t row0, int64_t row_end,
                                            const float (&acc)[HD / 8][4],
                                            const float (&row_scale)[2], int lane) {
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int hf = 0; hf < 2; ++hf) {
    const int64_t row = row0 + g + 8 * hf;
    if (row >= row_end) continue;
    T* d = dst + row * stride + 2 * t;
#pragma unroll
    for (int n = 0; n < HD / 8; ++n)
      *reinterpret_cast<uint32_t*>(d + n * 8) =
          pack2<T>(acc[n][2 * hf] * row_scale[hf], acc[n][2 * hf + 1] * row_scale[hf]);
  }
}

// ---- Forward ---------------------------------------------------------------------------------

template <int HD, typename T>
__global__ void __launch_bounds__(kThreads)
    fa2_forward_kernel(T* out, float* lse, const T* q, const T* k, const T* v, int64_t s, int nq,
                       int group, int64_t qkv_stride, int64_t out_stride, float scale_log2) {
  constexpr int ld = Geo<HD>::ld, kS = kFwdSlices, kNb = kKeys / 8, kDb = HD / 8;
  T* qs = reinterpret_cast<T*>(dynamic_smem());  // [kFwdRows][ld]
  T* ks = qs + kFwdRows * ld;                    // [kKeys][ld]
  T* vs = ks + kKeys * ld;                       // [kKeys][ld]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t qt = gridDim.x - 1 - blockIdx.x;  // the last query tiles see the most keys
  const int h = blockIdx.y;
  const int64_t bi = blockIdx.z, i0 = qt * kFwdRows;
  const T* qb = q + bi * s * qkv_stride + static_cast<int64_t>(h) * HD;
  const T* kb = k + bi * s * qkv_stride + static_cast<int64_t>(h / group) * HD;
  const T* vb = v + bi * s * qkv_stride + static_cast<int64_t>(h / group) * HD;

  load_tile<kFwdRows, HD>(qs, qb, i0, s, qkv_stride);
  load_tile<kKeys, HD>(ks, kb, 0, s, qkv_stride);
  cp_async_commit();

  const T* qw = qs + warp * kS * 16 * ld;       // the warp's query rows
  const int64_t row0 = i0 + warp * kS * 16;     // its first query
  const int64_t row_last = row0 + kS * 16 - 1;  // its last
  float o[kS][kDb][4] = {};                     // O, unnormalised
  float m[kS][2], l[kS][2];                     // row max (base 2, scaled), partial sums
#pragma unroll
  for (int mt = 0; mt < kS; ++mt) {
    m[mt][0] = m[mt][1] = -INFINITY;
    l[mt][0] = l[mt][1] = 0.0f;
  }

  const int64_t block_last = (i0 + kFwdRows < s ? i0 + kFwdRows : s) - 1;
  const int64_t tiles = block_last / kKeys + 1;  // causal: key tiles up to the last query
  for (int64_t jt = 0; jt < tiles; ++jt) {
    const int64_t j0 = jt * kKeys;
    cp_async_wait<0>();
    __syncthreads();  // K(jt) (and Q) have landed; every warp is done with V(jt - 1)
    load_tile<kKeys, HD>(vs, vb, j0, s, qkv_stride);
    cp_async_commit();
    const bool active = j0 <= row_last;  // else every key of the tile follows the warp's rows
    float sc[kS][kNb][4] = {};
    if (active) mma_abt<kS, kKeys, HD>(sc, qw, ks, lane);  // S = Q K^T
    cp_async_wait<0>();
    __syncthreads();  // V(jt) has landed; every warp is done with K(jt)
    if (jt + 1 < tiles) load_tile<kKeys, HD>(ks, kb, j0 + kKeys, s, qkv_stride);
    cp_async_commit();
    if (!active) continue;

    if (j0 + kKeys - 1 > row0) {  // the tile crosses the diagonal: keys after the query are -inf
      // key - query = (j0 - row0) + (n * 8 + 2 t + (i & 1)) - (mt * 16 + g + 8 (i >> 1)), where
      // j0 - row0 is in [-63, 31] here.
      const int off = static_cast<int>(j0 - row0) + 2 * t - g;
#pragma unroll
      for (int mt = 0; mt < kS; ++mt)
#pragma unroll
        for (int n = 0; n < kNb; ++n)
#pragma unroll
          for (int i = 0; i < 4; ++i)
            if (off + n * 8 + (i & 1) - mt * 16 - 8 * (i >> 1) > 0) sc[mt][n][i] = -INFINITY;
    }
    // Online softmax per row (lane holds 2 x kNb of its 64 scores; the quad has the rest).
    uint32_t p[kS][kKeys / 16][4];
#pragma unroll
    for (int mt = 0; mt < kS; ++mt) {
#pragma unroll
      for (int hf = 0; hf < 2; ++hf) {
        float mx = -INFINITY;
#pragma unroll
        for (int n = 0; n < kNb; ++n)
          mx = fmaxf(mx, fmaxf(sc[mt][n][2 * hf], sc[mt][n][2 * hf + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(kFull, mx, 2));
        const float mnew = fmaxf(m[mt][hf], mx * scale_log2);
        // -inf only for a row with no key yet: nothing to add or rescale, exp2f(-inf) = 0.
        const float base = mnew == -INFINITY ? 0.0f : mnew;
        const float corr = exp2f(m[mt][hf] - base);
        m[mt][hf] = mnew;
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < kNb; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pe = exp2f(fmaf(sc[mt][n][2 * hf + e], scale_log2, -base));
            sc[mt][n][2 * hf + e] = pe;
            sum += pe;
          }
        l[mt][hf] = l[mt][hf] * corr + sum;
#pragma unroll
        for (int n = 0; n < kDb; ++n) {
          o[mt][n][2 * hf] *= corr;
          o[mt][n][2 * hf + 1] *= corr;
        }
      }
#pragma unroll
      for (int kk = 0; kk < kKeys / 16; ++kk)
        to_a<T>(p[mt][kk], sc[mt][2 * kk], sc[mt][2 * kk + 1]);
    }
    mma_ab<kS, kKeys, HD>(o, p, vs, lane);  // O += P V
  }

  // out = O / l, rounded once; lse = m + log(l) in natural log.
  T* ob = out + bi * s * out_stride + static_cast<int64_t>(h) * HD;
#pragma unroll
  for (int mt = 0; mt < kS; ++mt) {
    float inv[2];
#pragma unroll
    for (int hf = 0; hf < 2; ++hf) {
      float sum = l[mt][hf];
      sum += __shfl_xor_sync(kFull, sum, 1);
      sum += __shfl_xor_sync(kFull, sum, 2);
      inv[hf] = 1.0f / sum;
      const int64_t row = row0 + mt * 16 + g + 8 * hf;
      if (t == 0 && row < s) lse[(bi * nq + h) * s + row] = m[mt][hf] * kLn2 + logf(sum);
    }
    store_slice<HD>(ob, out_stride, row0 + mt * 16, s, o[mt], inv, lane);
  }
}

}  // namespace mds::ops::cuda::fa2
