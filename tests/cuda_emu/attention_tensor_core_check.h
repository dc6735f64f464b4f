// What the emulated tests of the two 16-bit tensor-core attentions (attention_mma_test.cpp: the
// FA2 mma.sync kernels; attention_tc_test.cpp: the WMMA ones) share: the shapes, the GPU test's
// tolerances, one problem's buffers, and the checks of one shape against the float64 reference
// (attention_reference.h). A test supplies Kernels<HD, T>: a Problem<HD, T> with forward() and
// backward(out_in, lse_in), which launch its kernels on the emulator with its .cu's grids and
// shared-memory sizes.
//
// Each case checks the outputs against the reference, that nothing outside the outputs' head
// entries is written (marker fill), that inputs are left as they were, that no value is
// non-finite, that the emulator saw no race, uninitialised shared-memory read or mismatched
// collective, and that a second run with the threads in a shuffled order and the cp.async data
// landing only at the wait gives the same bits. D (attention_d.cuh's pass) comes from the host.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <ostream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "attention_reference.h"
#include "emu.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

namespace attention_test {

// cuda_tc_attention_test.cpp's tolerances (tests/cuda/tolerances.h).
using mds::test::TcTol;

struct Shape {
  int hd;
  bool fp16;
  int64_t b, s, nq, nkv, pad;  // pad: elements after each fused qkv row and each output row
};

inline std::string shape_name(const Shape& c) {
  return "hd" + std::to_string(c.hd) + (c.fp16 ? "_fp16" : "_bf16") + "_b" + std::to_string(c.b) +
         "_s" + std::to_string(c.s) + "_q" + std::to_string(c.nq) + "kv" + std::to_string(c.nkv) +
         "_pad" + std::to_string(c.pad);
}
inline void PrintTo(const Shape& c, std::ostream* os) {
  *os << shape_name(c);
}

// hd 64 and 128, bf16 and fp16, s = 1 (one row of one warp), 65 (a row past a 64-row tile) and
// 130 (past two), GQA 2/2, 4/2, 4/1, padded fused rows, b = 2.
inline constexpr Shape kTensorCoreShapes[] = {
    // hd, fp16, b, s, nq, nkv, pad
    {64, false, 1, 1, 2, 2, 0},     // one token: one row of one warp
    {64, false, 1, 130, 4, 2, 8},   // two backward tiles and a row, a partial forward tile
    {64, true, 2, 65, 4, 1, 0},     // b = 2, four query heads on one
    {64, true, 1, 130, 2, 2, 0},    // no GQA
    {128, false, 1, 65, 4, 1, 0},   // hd 128
    {128, false, 1, 130, 2, 2, 8},  //
    {128, true, 1, 1, 4, 1, 0},     //
    {128, true, 1, 130, 4, 2, 8},   //
};

// One problem: fused qkv rows [b * s][qkv_stride] (q heads, k heads, v heads, padding), out and
// dout rows [b * s][out_stride], lse and D [b][nq][s]; outputs filled with a marker first.
template <int HD, typename T>
struct Problem {
  Shape c;
  int64_t qkv_stride, out_stride, group;
  std::vector<T> qkv, dout, out, dqkv;
  std::vector<float> lse, D;
  static constexpr float kMarker = -12288.0f;  // exact in both types
  static constexpr int kSlack = 7;             // lse entries past the end, never to be written

  explicit Problem(const Shape& shape, uint32_t seed)
      : c(shape),
        qkv_stride((c.nq + 2 * c.nkv) * HD + c.pad),
        out_stride(c.nq * HD + c.pad),
        group(c.nq / c.nkv) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    qkv.resize(c.b * c.s * qkv_stride);
    dout.resize(c.b * c.s * out_stride);
    for (T& x : qkv) x = T(normal(rng));
    for (T& x : dout) x = T(normal(rng));
  }
  const T* q() const { return qkv.data(); }
  const T* k() const { return qkv.data() + c.nq * HD; }
  const T* v() const { return qkv.data() + (c.nq + c.nkv) * HD; }
  T* dq() { return dqkv.data(); }
  T* dk() { return dqkv.data() + c.nq * HD; }
  T* dv() { return dqkv.data() + (c.nq + c.nkv) * HD; }

  // The outputs marked, the inputs mapped (cp.async sources).
  void prepare_forward() {
    out.assign(c.b * c.s * out_stride, T(kMarker));
    lse.assign(c.b * c.nq * c.s + kSlack, kMarker);
    emu::mapped.clear();
    emu::map(qkv);
  }
  // lse and D from out_in and lse_in (the reference's, as the .cu is given the forward's).
  void prepare_backward(const std::vector<T>& out_in, const std::vector<float>& lse_in) {
    lse = lse_in;
    D.assign(c.b * c.nq * c.s, 0.0f);
    for (int64_t r = 0; r < c.b * c.s; ++r)
      for (int64_t h = 0; h < c.nq; ++h) {
        double d = 0;
        for (int e = 0; e < HD; ++e)
          d += double{static_cast<float>(out_in[r * out_stride + h * HD + e])} *
               static_cast<float>(dout[r * out_stride + h * HD + e]);
        D[((r / c.s) * c.nq + h) * c.s + r % c.s] = static_cast<float>(d);
      }
    dqkv.assign(qkv.size(), T(kMarker));
    emu::mapped.clear();
    for (const auto* v : {&qkv, &dout}) emu::map(*v);
    for (const auto* v : {&lse, &D}) emu::map(*v);
  }
};

template <template <int, typename> class Kernels, int HD, typename T>
void check(const Shape& shape) {
  using A = Kernels<HD, T>;
  A a(shape, 1000 + static_cast<uint32_t>(shape.s * shape.nq + HD));
  const Shape& c = a.c;
  const std::vector<T> qkv0 = a.qkv, dout0 = a.dout;
  std::vector<T> out16;
  const Reference ref =
      reference({c.b, c.s, c.nq, c.nkv, HD, a.qkv_stride, a.out_stride}, a.qkv, a.dout, out16);
  const std::vector<float> lse32(ref.lse.begin(), ref.lse.end());
  const int64_t heads = c.nq * HD, fused = (c.nq + 2 * c.nkv) * HD;

  a.forward();
  ASSERT_TRUE(no_emulator_errors()) << "forward";
  EXPECT_TRUE(close("out", columns(a.out, a.out_stride, 0, heads),
                    columns(ref.out, a.out_stride, 0, heads), TcTol<T>::out));
  EXPECT_TRUE(close("lse", {a.lse.begin(), a.lse.end() - A::kSlack}, ref.lse, TcTol<T>::lse));
  EXPECT_EQ(columns(a.out, a.out_stride, heads, a.out_stride),
            std::vector<double>(c.b * c.s * c.pad, A::kMarker))
      << "out's row padding written";
  EXPECT_EQ(std::vector<float>(a.lse.end() - A::kSlack, a.lse.end()),
            std::vector<float>(A::kSlack, A::kMarker))
      << "lse written past its end";
  const std::vector<uint32_t> out1 = bits(a.out);
  const std::vector<float> lse1 = a.lse;

  a.backward(out16, lse32);
  ASSERT_TRUE(no_emulator_errors()) << "backward";
  const int64_t part[4] = {0, heads, heads + c.nkv * HD, fused};
  const char* names[3] = {"dq", "dk", "dv"};
  for (int p = 0; p < 3; ++p)
    EXPECT_TRUE(close(names[p], columns(a.dqkv, a.qkv_stride, part[p], part[p + 1]),
                      columns(ref.dqkv, a.qkv_stride, part[p], part[p + 1]), TcTol<T>::grad));
  EXPECT_EQ(columns(a.dqkv, a.qkv_stride, fused, a.qkv_stride),
            std::vector<double>(c.b * c.s * c.pad, A::kMarker))
      << "dqkv's row padding written";
  EXPECT_EQ(bits(a.qkv), bits(qkv0)) << "qkv written";
  EXPECT_EQ(bits(a.dout), bits(dout0)) << "dout written";
  EXPECT_EQ(a.lse, lse32) << "lse written by the backward";

  // Another schedule: threads in a random order, every cp.async landing only at its wait.
  const std::vector<uint32_t> dqkv1 = bits(a.dqkv);
  emu::options = {.deferred_copies = true, .shuffle_seed = 7};
  a.forward();
  EXPECT_EQ(bits(a.out), out1) << "out differs under another schedule";
  EXPECT_EQ(a.lse, lse1) << "lse differs under another schedule";
  a.backward(out16, lse32);
  emu::options = {};
  ASSERT_TRUE(no_emulator_errors()) << "shuffled, deferred copies";
  EXPECT_EQ(bits(a.dqkv), dqkv1) << "dqkv differs under another schedule";
}

// Runs check for the shape's head dim and type; false when the kernels have no such head dim (the
// shape would check nothing).
template <template <int, typename> class Kernels>
bool check_shape(const Shape& c) {
  if (c.hd == 64 && !c.fp16) check<Kernels, 64, mds::bf16>(c);
  if (c.hd == 64 && c.fp16) check<Kernels, 64, mds::fp16>(c);
  if (c.hd == 128 && !c.fp16) check<Kernels, 128, mds::bf16>(c);
  if (c.hd == 128 && c.fp16) check<Kernels, 128, mds::fp16>(c);
  return c.hd == 64 || c.hd == 128;
}

}  // namespace attention_test
