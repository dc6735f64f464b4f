// The CUDA-core attention kernels, their source unmodified, run on the CPU under the CUDA emulator
// (emu.h): the flash kernels (src/mds/ops/cuda/attention_core.cuh: forward with lse, the dk/dv and
// dq backward, after attention_d.cuh's D = rowsum(dout * out)) and the unfused ones
// (attention_unfused_kernels.cuh), forward and backward against the float64 reference
// (attention_reference.h), with the GPU tests' tolerances (tests/cuda/cuda_test_util.h:
// kAttnForward, kAttnBackward, after one rounding to the 16-bit type). The grids are attention.cu's
// and attention_unfused.cu's. Shapes: fp32 at hd 17, 32, 48, 80, 127, 128 (one to four register
// columns per lane, masked), bf16 and fp16 through the same kernels at hd 32, 48, 80; s = 1, 33,
// 40 and 77 (past one and two 32-row tiles), GQA 2/2, 4/2, 2/1, 3/1, 4/1, padded fused rows, b = 2;
// the unfused kernels (no tiles) at s 1 to 12.
//
// Each case also checks that nothing outside the outputs' head entries is written (marker fill;
// lse and D past their ends), that inputs are left as they were, that no value is non-finite,
// that the emulator saw no mismatched collective or deadlock, and that a second run with the
// threads in a shuffled order gives the same bits. These kernels use plain shared-memory loads
// and stores, which the emulator's race detector does not track; a missing barrier shows in the
// numbers instead (the tiles start as NaN, and a shuffled order reads a tile half overwritten).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "attention_reference.h"
#include "emu.h"

#include "mds/ops/cuda/attention_core.cuh"
#include "mds/ops/cuda/attention_d.cuh"
#include "mds/ops/cuda/attention_unfused_kernels.cuh"

namespace {

namespace cc = mds::ops::cuda::cuda_core;
namespace unfused = mds::ops::cuda::unfused;
using attention_test::bits;
using attention_test::close;
using attention_test::columns;
using attention_test::no_emulator_errors;
using attention_test::Tol;
using attention_test::worst_ratio;
using mds::bf16;
using mds::fp16;

enum class Dtype { fp32, bf16, fp16 };
enum class Kernels { flash, unfused };

// The CUDA attention tests' tolerances (tests/cuda/tolerances.h), after one rounding to T.
using mds::test::after_roundings;
using mds::test::kAttnBackward;
using mds::test::kAttnForward;

struct Shape {
  Kernels kernels;
  Dtype dtype;
  int64_t hd, b, s, nq, nkv, pad;  // pad: elements after each fused qkv row and each output row
};

std::string shape_name(const Shape& c) {
  static const char* dtypes[] = {"fp32", "bf16", "fp16"};
  return std::string(c.kernels == Kernels::flash ? "flash_" : "unfused_") +
         dtypes[static_cast<int>(c.dtype)] + "_hd" + std::to_string(c.hd) + "_b" +
         std::to_string(c.b) + "_s" + std::to_string(c.s) + "_q" + std::to_string(c.nq) + "kv" +
         std::to_string(c.nkv) + "_pad" + std::to_string(c.pad);
}
void PrintTo(const Shape& c, std::ostream* os) {
  *os << shape_name(c);
}

// The largest error of each output as a multiple of its tolerance, per dtype over the cases run:
// printed at the end, to see how much room the tolerances leave.
struct Worst {
  double out = 0, lse = 0, dq = 0, dk = 0, dv = 0;
};
Worst worst_of_dtype[3];

// One problem: fused qkv rows [b * s][qkv_stride], out and dout rows [b * s][out_stride], lse and
// D [b][nq][s]; outputs filled with a marker first.
template <typename T>
struct Attention {
  Shape c;
  int64_t qkv_stride, out_stride, group;
  std::vector<T> qkv, dout, out, dqkv;
  std::vector<float> lse, D;
  static constexpr float kMarker = -12288.0f;  // exact in every type
  static constexpr int kSlack = 7;             // lse and D entries past the end, never written

  explicit Attention(const Shape& shape, uint32_t seed)
      : c(shape),
        qkv_stride((c.nq + 2 * c.nkv) * c.hd + c.pad),
        out_stride(c.nq * c.hd + c.pad),
        group(c.nq / c.nkv) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    qkv.resize(c.b * c.s * qkv_stride);
    dout.resize(c.b * c.s * out_stride);
    for (T& x : qkv) x = T(normal(rng));
    for (T& x : dout) x = T(normal(rng));
  }
  const T* q() const { return qkv.data(); }
  const T* k() const { return qkv.data() + c.nq * c.hd; }
  const T* v() const { return qkv.data() + (c.nq + c.nkv) * c.hd; }
  int hd() const { return static_cast<int>(c.hd); }
  unsigned tiles() const { return static_cast<unsigned>((c.s + cc::kTile - 1) / cc::kTile); }
  // attention.cu's plan: `n` tiles of kTile rows tile_ld(hd) floats apart.
  size_t smem(int n) const { return size_t(n) * cc::kTile * cc::tile_ld(hd()) * sizeof(float); }
  unsigned unfused_blocks(int64_t rows) const {
    return static_cast<unsigned>((rows + unfused::kWarps - 1) / unfused::kWarps);
  }

  template <int kChunks>
  void flash_forward() {
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    emu::launch({tiles(), unsigned(c.nq), unsigned(c.b)}, cc::kThreads, smem(3), [&] {
      cc::attention_forward_kernel<T, kChunks>(out.data(), lse.data(), q(), k(), v(), c.s,
                                               int(c.nq), int(group), hd(), qkv_stride, out_stride,
                                               scale);
    });
  }
  template <int kChunks>
  void flash_backward(const std::vector<T>& out_in) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(c.hd));
    const int64_t rows = c.b * c.s * c.nq;
    constexpr int kDThreads = 256;  // attention_d.cuh's launch: blocks_for(rows, 8 warps)
    emu::launch({unsigned((rows + 7) / 8), 1u, 1u}, kDThreads, 0, [&] {
      mds::ops::cuda::attention_detail::attention_backward_d_kernel<T>(
          D.data(), dout.data(), out_in.data(), c.b, c.s, int(c.nq), hd(), out_stride);
    });
    T* dq = dqkv.data();
    T* dk = dq + c.nq * c.hd;
    T* dv = dk + c.nkv * c.hd;
    emu::launch({tiles(), unsigned(c.nkv), unsigned(c.b)}, cc::kThreads, smem(4), [&] {
      cc::attention_backward_dkdv_kernel<T, kChunks>(dk, dv, dout.data(), lse.data(), D.data(), q(),
                                                     k(), v(), c.s, int(c.nq), int(group), hd(),
                                                     qkv_stride, out_stride, scale);
    });
    emu::launch({tiles(), unsigned(c.nq), unsigned(c.b)}, cc::kThreads, smem(4), [&] {
      cc::attention_backward_dq_kernel<T, kChunks>(dq, dout.data(), lse.data(), D.data(), q(), k(),
                                                   v(), c.s, int(c.nq), int(group), hd(),
                                                   qkv_stride, out_stride, scale);
    });
  }

  void forward() {
    out.assign(c.b * c.s * out_stride, T(kMarker));
    lse.assign(c.b * c.nq * c.s + kSlack, kMarker);
    if (c.kernels == Kernels::unfused) {
      emu::launch({unfused_blocks(c.b * c.nq * c.s), 1u, 1u}, unfused::kWarps * 32, 0, [&] {
        unfused::forward_kernel<T>(out.data(), lse.data(), q(), k(), v(), c.b, c.s, c.nq, c.nkv,
                                   c.hd, qkv_stride, out_stride, 1.0f / sqrtf(float(c.hd)));
      });
      return;
    }
    switch ((c.hd + 31) / 32) {  // attention.cu's dispatch
      case 1:
        return flash_forward<1>();
      case 2:
        return flash_forward<2>();
      case 3:
        return flash_forward<3>();
      default:
        return flash_forward<4>();
    }
  }
  // From out_in and lse_in (the reference's, as attention.cu is given the forward's).
  void backward(const std::vector<T>& out_in, const std::vector<float>& lse_in) {
    lse = lse_in;
    D.assign(c.b * c.nq * c.s + kSlack, kMarker);
    dqkv.assign(qkv.size(), T(kMarker));
    if (c.kernels == Kernels::unfused) {
      const float scale = 1.0f / sqrtf(float(c.hd));
      T* dq = dqkv.data();
      T* dk = dq + c.nq * c.hd;
      T* dv = dk + c.nkv * c.hd;
      emu::launch({unfused_blocks(c.b * c.nq * c.s), 1u, 1u}, unfused::kWarps * 32, 0, [&] {
        unfused::backward_dq_kernel<T>(dq, dout.data(), out_in.data(), lse.data(), q(), k(), v(),
                                       c.b, c.s, c.nq, c.nkv, c.hd, qkv_stride, out_stride, scale);
      });
      emu::launch({unfused_blocks(c.b * c.nkv * c.s), 1u, 1u}, unfused::kWarps * 32, 0, [&] {
        unfused::backward_dkv_kernel<T>(dk, dv, dout.data(), out_in.data(), lse.data(), q(), k(),
                                        v(), c.b, c.s, c.nq, c.nkv, c.hd, qkv_stride, out_stride,
                                        scale);
      });
      return;
    }
    switch ((c.hd + 31) / 32) {
      case 1:
        return flash_backward<1>(out_in);
      case 2:
        return flash_backward<2>(out_in);
      case 3:
        return flash_backward<3>(out_in);
      default:
        return flash_backward<4>(out_in);
    }
  }
};

template <typename T>
void check(const Shape& shape) {
  using A = Attention<T>;
  A a(shape, 2000 + static_cast<uint32_t>(shape.s * shape.nq + shape.hd));
  const Shape& c = a.c;
  const std::vector<T> qkv0 = a.qkv, dout0 = a.dout;
  std::vector<T> out_stored;
  const attention_test::Reference ref = attention_test::reference(
      {c.b, c.s, c.nq, c.nkv, c.hd, a.qkv_stride, a.out_stride}, a.qkv, a.dout, out_stored);
  const std::vector<float> lse32(ref.lse.begin(), ref.lse.end());
  const int64_t heads = c.nq * c.hd, fused = (c.nq + 2 * c.nkv) * c.hd;
  const Tol out_tol = after_roundings<T>(kAttnForward, 1),
            grad_tol = after_roundings<T>(kAttnBackward, 1);
  Worst& worst = worst_of_dtype[static_cast<int>(c.dtype)];

  a.forward();
  ASSERT_TRUE(no_emulator_errors()) << "forward";
  const std::vector<double> out = columns(a.out, a.out_stride, 0, heads),
                            out_ref = columns(ref.out, a.out_stride, 0, heads),
                            lse = {a.lse.begin(), a.lse.end() - A::kSlack};
  EXPECT_TRUE(close("out", out, out_ref, out_tol));
  EXPECT_TRUE(close("lse", lse, ref.lse, kAttnForward));
  worst.out = std::max(worst.out, worst_ratio(out, out_ref, out_tol));
  worst.lse = std::max(worst.lse, worst_ratio(lse, ref.lse, kAttnForward));
  EXPECT_EQ(columns(a.out, a.out_stride, heads, a.out_stride),
            std::vector<double>(c.b * c.s * c.pad, A::kMarker))
      << "out's row padding written";
  EXPECT_EQ(std::vector<float>(a.lse.end() - A::kSlack, a.lse.end()),
            std::vector<float>(A::kSlack, A::kMarker))
      << "lse written past its end";
  const std::vector<uint32_t> out1 = bits(a.out), lse1 = bits(a.lse);

  a.backward(out_stored, lse32);
  ASSERT_TRUE(no_emulator_errors()) << "backward";
  const int64_t part[4] = {0, heads, heads + c.nkv * c.hd, fused};
  const char* names[3] = {"dq", "dk", "dv"};
  double* worst_of[3] = {&worst.dq, &worst.dk, &worst.dv};
  for (int p = 0; p < 3; ++p) {
    const std::vector<double> got = columns(a.dqkv, a.qkv_stride, part[p], part[p + 1]),
                              want = columns(ref.dqkv, a.qkv_stride, part[p], part[p + 1]);
    EXPECT_TRUE(close(names[p], got, want, grad_tol));
    *worst_of[p] = std::max(*worst_of[p], worst_ratio(got, want, grad_tol));
  }
  EXPECT_EQ(columns(a.dqkv, a.qkv_stride, fused, a.qkv_stride),
            std::vector<double>(c.b * c.s * c.pad, A::kMarker))
      << "dqkv's row padding written";
  EXPECT_EQ(std::vector<float>(a.D.end() - A::kSlack, a.D.end()),
            std::vector<float>(A::kSlack, A::kMarker))
      << "D written past its end";
  EXPECT_EQ(bits(a.qkv), bits(qkv0)) << "qkv written";
  EXPECT_EQ(bits(a.dout), bits(dout0)) << "dout written";
  EXPECT_EQ(a.lse, lse32) << "lse written by the backward";

  // Another schedule: the threads of each block in a random order on every pass.
  const std::vector<uint32_t> dqkv1 = bits(a.dqkv);
  emu::options = {.shuffle_seed = 7};
  a.forward();
  EXPECT_EQ(bits(a.out), out1) << "out differs under another schedule";
  EXPECT_EQ(bits(a.lse), lse1) << "lse differs under another schedule";
  a.backward(out_stored, lse32);
  emu::options = {};
  ASSERT_TRUE(no_emulator_errors()) << "shuffled";
  EXPECT_EQ(bits(a.dqkv), dqkv1) << "dqkv differs under another schedule";
}

class CoreAttention : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
    emu::mapped.clear();  // no cp.async here
  }
  static void TearDownTestSuite() {
    static const char* dtypes[] = {"fp32", "bf16", "fp16"};
    for (int d = 0; d < 3; ++d) {
      const Worst& w = worst_of_dtype[d];
      std::printf("%s worst error / tolerance: out %.3g, lse %.3g, dq %.3g, dk %.3g, dv %.3g\n",
                  dtypes[d], w.out, w.lse, w.dq, w.dk, w.dv);
    }
  }
};

TEST_P(CoreAttention, MatchesFloat64ReferenceUnderTheEmulator) {
  const Shape& c = GetParam();
  if (c.dtype == Dtype::fp32) check<float>(c);
  if (c.dtype == Dtype::bf16) check<bf16>(c);
  if (c.dtype == Dtype::fp16) check<fp16>(c);
}

constexpr Kernels F = Kernels::flash, U = Kernels::unfused;
constexpr Dtype f32 = Dtype::fp32, b16 = Dtype::bf16, f16 = Dtype::fp16;
constexpr Shape kShapes[] = {
    // kernels, dtype, hd, b, s, nq, nkv, pad
    {F, f32, 32, 1, 1, 4, 2, 0},    // one token: one row of one warp
    {F, f32, 17, 1, 33, 3, 1, 3},   // a row past a tile, hd masked in one column, padded rows
    {F, f32, 48, 2, 40, 2, 1, 0},   // b = 2
    {F, f32, 80, 1, 33, 2, 2, 0},   // no GQA, three columns
    {F, f32, 127, 1, 77, 2, 1, 5},  // two tiles and a partial one; four columns, the last masked
    {F, f32, 128, 1, 33, 2, 1, 0},  // four full columns
    {F, b16, 32, 1, 33, 4, 2, 8},   // 16-bit: the shapes the tensor cores do not take
    {F, b16, 48, 2, 33, 3, 1, 0},   //
    {F, f16, 80, 1, 33, 4, 1, 0},   //
    {U, f32, 17, 1, 12, 3, 1, 3},   // unfused: a warp per row
    {U, f32, 127, 2, 9, 4, 2, 0},   // b = 2
    {U, b16, 48, 1, 10, 4, 2, 8},   //
    {U, f16, 32, 1, 1, 2, 2, 0},    //
};
INSTANTIATE_TEST_SUITE_P(Shapes, CoreAttention, ::testing::ValuesIn(kShapes),
                         [](const auto& info) { return shape_name(info.param); });

}  // namespace
