// Stand-in for src/mds/ops/cuda/mma.cuh under the emulator (emu.h): the same functions, as warp
// collectives. The fragment layouts are the PTX ISA's tables ("Matrix Fragments for
// mma.m16n8k16 with floating point type", "ldmatrix"), written from the ISA, not from the
// kernels; lane = 4 g + t, a register holds two 16-bit elements, the lower index in the low half:
//   mma A (16 x 16): reg i, half e = (row g + 8 (i & 1), col 2 t + e + 8 (i >> 1))
//       B (16 x 8):  reg i, half e = (k 2 t + e + 8 i, n g)
//       C (16 x 8):  c[i] = (row g + 8 (i >> 1), col 2 t + (i & 1))
//   ldmatrix x4: lane 8 j + r gives the address of row r of matrix j; register j of a lane
//       receives M_j (g, 2 t .. 2 t + 1), with .trans (2 t, g), (2 t + 1, g).
// The product sums in fp32 with fmaf, k = 0 .. 15 in order, onto C: not the tensor cores'
// rounding (products exact, sums aligned and truncated), which the tests' tolerances cover.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "mds/ops/cuda/common.cuh"

namespace mds::ops::cuda {

template <typename V>
V lds(const V* p) {
  emu::on_read(p, sizeof(V), false);
  return *p;
}

template <typename T>
uint32_t pack2(float lo, float hi) {
  return uint32_t{T(lo).bits} | uint32_t{T(hi).bits} << 16;
}

namespace emu_detail {

template <typename T>
float half_of(uint32_t reg, int e) {
  return static_cast<float>(T::from_bits(static_cast<uint16_t>(e ? reg >> 16 : reg & 0xffffu)));
}

template <typename T>
void mma(emu::Warp& w) {
  float a[16][16], b[16][8], c[16][8];
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; ++i)
      for (int e = 0; e < 2; ++e)
        a[g + 8 * (i & 1)][2 * t + e + 8 * (i >> 1)] = half_of<T>(w.in[l][i], e);
    for (int i = 0; i < 2; ++i)
      for (int e = 0; e < 2; ++e) b[2 * t + e + 8 * i][g] = half_of<T>(w.in[l][4 + i], e);
    for (int i = 0; i < 4; ++i) c[g + 8 * (i >> 1)][2 * t + (i & 1)] = w.f_in[l][i];
  }
  for (int l = 0; l < 32; ++l)
    for (int i = 0; i < 4; ++i) {
      const int row = l / 4 + 8 * (i >> 1), col = 2 * (l % 4) + (i & 1);
      float acc = c[row][col];
      for (int k = 0; k < 16; ++k) acc = std::fma(a[row][k], b[k][col], acc);
      w.f_out[l][i] = acc;
    }
}

inline void ldmatrix(emu::Warp& w, bool trans) {
  const int lane0 = emu::cur & ~31, caller = emu::cur;
  for (int l = 0; l < 32; ++l) {
    if (reinterpret_cast<uintptr_t>(w.ptr[l]) % 16)
      emu::report("thread %d: ldmatrix row address not 16-byte aligned", lane0 + l);
    emu::cur = lane0 + l;  // the lane that gave the address reads the row
    emu::on_read(w.ptr[l], 16, true);
  }
  emu::cur = caller;
  const auto elem = [&](int j, int row, int col) {  // matrix j's 16-bit element (row, col)
    uint16_t v;
    std::memcpy(&v, w.ptr[8 * j + row] + 2 * col, 2);
    return uint32_t{v};
  };
  for (int l = 0; l < 32; ++l) {
    const int g = l / 4, t = l % 4;
    for (int j = 0; j < 4; ++j)
      w.out[l][j] = trans ? elem(j, 2 * t, g) | elem(j, 2 * t + 1, g) << 16
                          : elem(j, g, 2 * t) | elem(j, g, 2 * t + 1) << 16;
  }
}

inline void ldmatrix_x4(uint32_t (&r)[4], const void* p, bool trans) {
  emu::Warp& w = emu::block().warps[emu::cur / 32];
  const int lane = emu::cur % 32;
  w.ptr[lane] = static_cast<const unsigned char*>(p);
  emu::collective(trans ? emu::Op::ldmatrix_trans : emu::Op::ldmatrix,
                  [trans](emu::Warp& s) { ldmatrix(s, trans); });
  for (int j = 0; j < 4; ++j) r[j] = w.out[lane][j];
}

}  // namespace emu_detail

template <typename T>
void mma_m16n8k16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  emu::Warp& w = emu::block().warps[emu::cur / 32];
  const int lane = emu::cur % 32;
  for (int i = 0; i < 4; ++i) w.in[lane][i] = a[i], w.f_in[lane][i] = c[i];
  w.in[lane][4] = b0, w.in[lane][5] = b1;
  constexpr bool bf = std::is_same_v<T, __nv_bfloat16>;
  emu::collective(bf ? emu::Op::mma_bf16 : emu::Op::mma_fp16, emu_detail::mma<T>);
  for (int i = 0; i < 4; ++i) c[i] = w.f_out[lane][i];
}

inline void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  emu_detail::ldmatrix_x4(r, p, false);
}
inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  emu_detail::ldmatrix_x4(r, p, true);
}

inline void cp_async_16(void* dst, const void* src, bool valid) {
  emu::cp_async(dst, src, valid, 16);
}
inline void cp_async_4(void* dst, const void* src, bool valid) {
  emu::cp_async(dst, src, valid, 4);
}
inline void cp_async_commit() {
  emu::cp_async_commit();
}
template <int N>
void cp_async_wait() {
  emu::cp_async_wait(N);
}

}  // namespace mds::ops::cuda
