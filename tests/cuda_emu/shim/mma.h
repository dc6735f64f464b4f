// Stand-in for CUDA's <mma.h> (the WMMA API, nvcuda::wmma) under the emulator (../emu.h), for the
// tensor-core attention (src/mds/ops/cuda/attention_tc.cuh). Not the repo's mds/ops/cuda/mma.cuh
// (the PTX wrappers, shim/mds/ops/cuda/mma.cuh).
//
// Only 16x16x16 fragments. The hardware's per-lane layout is opaque and the kernels never index a
// fragment's elements, so every lane's fragment holds the whole 16x16 tile (as float: 16-bit
// values convert exactly). Each operation is a warp collective (all 32 lanes, the same operation,
// the same pointer and ldm or fill value) that checks WMMA's rules: the pointer 256-bit (32-byte)
// aligned, ldm a multiple of 8 elements (16-bit) or 4 (fp32).
//
// Lane e % 32 owns element e = 16 row + col of a tile: a lane reads (load_matrix_sync) and writes
// (store_matrix_sync) its elements when it arrives, not when the last lane does, so a load that
// no __syncwarp separates from the other lanes' plain stores of its tile reads their stale (or
// poisoned) values, as it may on the GPU. mma_sync sums d = c + a b in fp32 with fmaf, k = 0 .. 15
// in order: the products of 16-bit values are exact, but not the tensor cores' rounding of the
// sum (aligned and truncated), which the tests' tolerances cover. Not seen by the race detector
// (plain shared-memory accesses, as the CUDA-core kernels').
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "emu.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the WMMA stand-in has 16x16x16 fragments only");
  float tile[16][16];  // A: m x k, B: k x n, accumulator: m x n
};
template <typename T>
using Acc = fragment<accumulator, 16, 16, 16, T>;

namespace emu_detail {

inline int lane() {
  return emu::cur % 32;
}
inline emu::Warp& warp() {
  return emu::block().warps[emu::cur / 32];
}
inline bool owns(int lane, int row, int col) {
  return (16 * row + col) % 32 == lane;
}

// This lane's operands: the pointer (ptr), ldm (in[0]) and fragment (frag[0]); WMMA's rules,
// checked on lane 0 (check_uniform compares the others with it).
template <typename V>
void stage(const char* what, const V* p, unsigned ldm, void* frag) {
  constexpr unsigned multiple = 16 / sizeof(V);  // ldm of 16 bytes: 8 16-bit elements, 4 floats
  if (lane() == 0 && reinterpret_cast<uintptr_t>(p) % 32)
    emu::report("thread %d: %s pointer %p is not 256-bit aligned", emu::cur, what,
                static_cast<const void*>(p));
  if (lane() == 0 && ldm % multiple)
    emu::report("thread %d: %s ldm %u is not a multiple of %u", emu::cur, what, ldm, multiple);
  emu::Warp& w = warp();
  w.ptr[lane()] = reinterpret_cast<const unsigned char*>(p);
  w.in[lane()][0] = ldm;
  w.frag[lane()][0] = frag;
}
inline void check_uniform(const emu::Warp& w, const char* what) {
  for (int l = 1; l < 32; ++l)
    if (w.ptr[l] != w.ptr[0] || w.in[l][0] != w.in[0][0])
      return emu::report("warp %d: lanes 0 and %d give %s different pointers or ldm", emu::cur / 32,
                         l, what);
}
// Every lane's fragment (frag[l][0], of type F) gets each element from the lane that owns it.
template <typename F>
void gather(emu::Warp& w) {
  float t[16][16];
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      t[i][j] = static_cast<F*>(w.frag[(16 * i + j) % 32][0])->tile[i][j];
  for (int l = 0; l < 32; ++l) std::memcpy(static_cast<F*>(w.frag[l][0])->tile, t, sizeof t);
}

// Element (row, col) of a tile at p, ldm elements apart: rows (row major) or columns.
template <typename V>
V& at(V* p, unsigned ldm, bool row_major, int row, int col) {
  return row_major ? p[row * ldm + col] : p[col * ldm + row];
}

}  // namespace emu_detail

inline void fill_fragment(Acc<float>& f, float v) {
  namespace d = emu_detail;
  for (auto& row : f.tile)
    for (float& x : row) x = v;
  emu::Warp& w = d::warp();
  std::memcpy(&w.in[d::lane()][0], &f.tile[0][0], sizeof(float));
  emu::collective(emu::Op::wmma_fill, [](emu::Warp& s) {
    for (int l = 1; l < 32; ++l)
      if (s.in[l][0] != s.in[0][0])
        return emu::report("warp %d: lanes 0 and %d fill a fragment with different values",
                           emu::cur / 32, l);
  });
}

// matrix_a or matrix_b from 16-bit memory, row or column major.
template <typename Use, typename T, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(std::is_same_v<Use, matrix_a> || std::is_same_v<Use, matrix_b>);
  static_assert(std::is_same_v<Layout, row_major> || std::is_same_v<Layout, col_major>);
  namespace d = emu_detail;
  d::stage("load_matrix_sync", p, ldm, &f);
  const int lane = d::lane();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      if (d::owns(lane, i, j))
        f.tile[i][j] = static_cast<float>(d::at(p, ldm, std::is_same_v<Layout, row_major>, i, j));
  emu::collective(emu::Op::wmma_load, [](emu::Warp& w) {
    d::check_uniform(w, "load_matrix_sync");
    d::gather<fragment<Use, 16, 16, 16, T, Layout>>(w);
  });
}

inline void load_matrix_sync(Acc<float>& f, const float* p, unsigned ldm, layout_t layout) {
  namespace d = emu_detail;
  d::stage("load_matrix_sync", p, ldm, &f);
  const int lane = d::lane();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      if (d::owns(lane, i, j)) f.tile[i][j] = d::at(p, ldm, layout == mem_row_major, i, j);
  emu::collective(emu::Op::wmma_load, [](emu::Warp& w) {
    d::check_uniform(w, "load_matrix_sync");
    d::gather<Acc<float>>(w);
  });
}

inline void store_matrix_sync(float* p, const Acc<float>& f, unsigned ldm, layout_t layout) {
  namespace d = emu_detail;
  d::stage("store_matrix_sync", p, ldm, const_cast<Acc<float>*>(&f));
  const int lane = d::lane();
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j)
      if (d::owns(lane, i, j)) d::at(p, ldm, layout == mem_row_major, i, j) = f.tile[i][j];
  emu::collective(emu::Op::wmma_store,
                  [](emu::Warp& w) { d::check_uniform(w, "store_matrix_sync"); });
}

// d = c + a b, each element computed by the lane that owns it from its own fragments.
template <typename T, typename LA, typename LB>
void mma_sync(Acc<float>& dst, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
              const fragment<matrix_b, 16, 16, 16, T, LB>& b, const Acc<float>& c) {
  using A = fragment<matrix_a, 16, 16, 16, T, LA>;
  using B = fragment<matrix_b, 16, 16, 16, T, LB>;
  namespace d = emu_detail;
  emu::Warp& w = d::warp();
  const int lane = d::lane();
  w.frag[lane][0] = &dst;
  w.frag[lane][1] = const_cast<A*>(&a);
  w.frag[lane][2] = const_cast<B*>(&b);
  w.frag[lane][3] = const_cast<Acc<float>*>(&c);
  emu::collective(emu::Op::wmma_mma, [](emu::Warp& s) {
    float t[16][16];
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 16; ++j) {
        void* const* f = s.frag[(16 * i + j) % 32];
        const auto& fa = *static_cast<const A*>(f[1]);
        const auto& fb = *static_cast<const B*>(f[2]);
        float acc = static_cast<const Acc<float>*>(f[3])->tile[i][j];
        for (int k = 0; k < 16; ++k) acc = std::fma(fa.tile[i][k], fb.tile[k][j], acc);
        t[i][j] = acc;
      }
    for (int l = 0; l < 32; ++l)
      std::memcpy(static_cast<Acc<float>*>(s.frag[l][0])->tile, t, sizeof t);
  });
}

}  // namespace nvcuda::wmma
