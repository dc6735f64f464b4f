// The FA2 mma.sync attention kernels (src/mds/ops/cuda/attention_mma.cuh, attention_mma_bwd.cuh),
// their source unmodified, run on the CPU under the CUDA emulator (emu.h), so that every edit of
// them is checked in CI without a GPU: forward and both backward kernels against a float64
// reference, with the GPU test's tolerances (cuda_tc_attention_test.cpp's TcTol). Shapes: hd 64
// and 128, bf16 and fp16, s = 1 (one row of one warp), 65 (a row past a backward tile) and 130
// (past two, and a partial forward tile), GQA 2/2, 4/2, 4/1, padded fused rows, b = 2.
//
// Each case also checks that nothing outside the outputs' head entries is written (marker fill),
// that inputs are left as they were, that no value is non-finite, that the emulator saw no race,
// uninitialised shared-memory read or mismatched collective, and that a second run with the
// threads in a shuffled order and the cp.async data landing only at the wait gives the same bits.
// The launch grids are attention_mma.cu's. D (attention_d.cuh's pass) comes from the host.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "emu.h"
#include "mds/ops/cuda/attention_mma_bwd.cuh"

namespace {

namespace fa2 = mds::ops::cuda::fa2;
using mds::bf16;
using mds::fp16;

// cuda_tc_attention_test.cpp's TcTol: the CUDA-core kernels' tolerance after one rounding to T,
// plus the tensor cores' P and dS rounded to T (u per term of a k-sum).
struct Tol {
  double rtol, atol_rel, atol;
};
template <typename T>
struct TcTol {
  static constexpr bool bf = std::is_same_v<T, bf16>;
  static constexpr double u = bf ? 0x1p-8 : 0x1p-11, eta = bf ? 0x1p-134 : 0x1p-25;
  static constexpr Tol rounded(Tol b) {
    return {b.rtol * (1 + u) + u, b.atol_rel * (1 + u), b.atol * (1 + u) + eta};
  }
  static constexpr Tol core_out = rounded({2e-5, 2e-5, 0}), core_grad = rounded({1e-4, 1e-4, 1e-5});
  static constexpr Tol out{core_out.rtol + u, core_out.atol_rel + 2 * u, core_out.atol};
  static constexpr Tol grad{core_grad.rtol + 2 * u, core_grad.atol_rel + 4 * u, core_grad.atol};
  static constexpr Tol lse{2e-5 + 5e-5, 2e-5 + 5e-5, 0};
};

// |got - ref| <= atol + rtol |ref| for every entry, atol = atol_rel max|ref| + tol.atol.
::testing::AssertionResult close(const char* what, const std::vector<double>& got,
                                 const std::vector<double>& ref, Tol tol) {
  double scale = 0;
  for (double r : ref) scale = std::max(scale, std::fabs(r));
  const double atol = tol.atol_rel * scale + tol.atol;
  double worst = 0;
  size_t at = 0, nonfinite = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double ratio = std::fabs(got[i] - ref[i]) / (atol + tol.rtol * std::fabs(ref[i]));
    nonfinite += !std::isfinite(got[i]);
    if (!(ratio <= worst)) worst = ratio, at = i;
  }
  if (worst <= 1 && nonfinite == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": " << nonfinite << " non-finite; worst entry " << at << " = " << got[at]
         << " against " << ref[at] << " (" << worst << " x the tolerance)";
}

struct Shape {
  int hd;
  bool fp16;
  int64_t b, s, nq, nkv, pad;  // pad: elements after each fused qkv row and each output row
};

std::string shape_name(const Shape& c) {
  return "hd" + std::to_string(c.hd) + (c.fp16 ? "_fp16" : "_bf16") + "_b" + std::to_string(c.b) +
         "_s" + std::to_string(c.s) + "_q" + std::to_string(c.nq) + "kv" + std::to_string(c.nkv) +
         "_pad" + std::to_string(c.pad);
}
void PrintTo(const Shape& c, std::ostream* os) {
  *os << shape_name(c);
}

// One problem: fused qkv rows [b * s][qkv_stride] (q heads, k heads, v heads, padding), out and
// dout rows [b * s][out_stride], lse and D [b][nq][s]; outputs filled with a marker first.
template <int HD, typename T>
struct Attention {
  Shape c;
  int64_t qkv_stride, out_stride, group;
  std::vector<T> qkv, dout, out, dqkv;
  std::vector<float> lse, D;
  static constexpr float kMarker = -12288.0f;  // exact in both types
  static constexpr int kSlack = 7;             // lse entries past the end, never to be written

  explicit Attention(const Shape& shape, uint32_t seed)
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

  void forward() {
    out.assign(c.b * c.s * out_stride, T(kMarker));
    lse.assign(c.b * c.nq * c.s + kSlack, kMarker);
    emu::mapped.clear();
    emu::map(qkv);
    const float scale_log2 = 1.0f / std::sqrt(float{HD}) * fa2::kLog2e;
    const unsigned tiles = static_cast<unsigned>((c.s + fa2::kFwdRows - 1) / fa2::kFwdRows);
    emu::launch(
        {tiles, unsigned(c.nq), unsigned(c.b)}, fa2::kThreads, fa2::Geo<HD>::forward_smem, [&] {
          fa2::fa2_forward_kernel<HD, T>(out.data(), lse.data(), q(), k(), v(), c.s, int(c.nq),
                                         int(group), qkv_stride, out_stride, scale_log2);
        });
  }
  // From out_in and lse_in (the reference's, as attention_mma.cu is given the forward's).
  void backward(const std::vector<T>& out_in, const std::vector<float>& lse_in) {
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
    const float scale = 1.0f / std::sqrt(float{HD}), scale_log2 = scale * fa2::kLog2e;
    T* dq = dqkv.data();
    T* dk = dq + c.nq * HD;
    T* dv = dk + c.nkv * HD;
    const unsigned tiles = static_cast<unsigned>((c.s + fa2::kBwdTile - 1) / fa2::kBwdTile);
    emu::launch({tiles, unsigned(c.nkv), unsigned(c.b)}, fa2::kThreads, fa2::Geo<HD>::dkdv_smem,
                [&] {
                  fa2::fa2_dkdv_kernel<HD, T>(dk, dv, dout.data(), lse.data(), D.data(), q(), k(),
                                              v(), c.s, int(c.nq), int(group), qkv_stride,
                                              out_stride, scale, scale_log2);
                });
    emu::launch({tiles, unsigned(c.nq), unsigned(c.b)}, fa2::kThreads, fa2::Geo<HD>::dq_smem, [&] {
      fa2::fa2_dq_kernel<HD, T>(dq, dout.data(), lse.data(), D.data(), q(), k(), v(), c.s,
                                int(c.nq), int(group), qkv_stride, out_stride, scale, scale_log2);
    });
  }
};

// The float64 reference of causal GQA attention on the same 16-bit inputs: out and lse, and the
// gradients from `out16` (out rounded to T) and lse, as the kernels get them.
struct Reference {
  std::vector<double> out, lse, dqkv;
};
template <int HD, typename T>
Reference reference(const Attention<HD, T>& a, std::vector<T>& out16) {
  const Shape& c = a.c;
  Reference ref;
  ref.out.assign(a.dout.size(), 0.0);  // out's layout
  ref.lse.assign(c.b * c.nq * c.s, 0.0);
  ref.dqkv.assign(a.qkv.size(), 0.0);
  out16.assign(a.dout.size(), T(0.0f));
  const double scale = 1.0 / std::sqrt(double{HD});
  const int64_t k0 = c.nq * HD, v0 = (c.nq + c.nkv) * HD;
  std::vector<double> p(c.s);
  for (int64_t bi = 0; bi < c.b; ++bi)
    for (int64_t h = 0; h < c.nq; ++h) {
      const int64_t kh = h / a.group;
      const auto qkv = [&](int64_t i, int64_t col) {
        return double{static_cast<float>(a.qkv[(bi * c.s + i) * a.qkv_stride + col])};
      };
      const auto Q = [&](int64_t i, int d) { return qkv(i, h * HD + d); };
      const auto K = [&](int64_t j, int d) { return qkv(j, k0 + kh * HD + d); };
      const auto V = [&](int64_t j, int d) { return qkv(j, v0 + kh * HD + d); };
      const auto dO = [&](int64_t i, int d) {
        return double{static_cast<float>(a.dout[(bi * c.s + i) * a.out_stride + h * HD + d])};
      };
      for (int64_t i = 0; i < c.s; ++i) {
        double mx = -INFINITY, l = 0;
        for (int64_t j = 0; j <= i; ++j) {
          p[j] = 0;
          for (int d = 0; d < HD; ++d) p[j] += Q(i, d) * K(j, d) * scale;
          mx = std::max(mx, p[j]);
        }
        for (int64_t j = 0; j <= i; ++j) l += p[j] = std::exp(p[j] - mx);
        const double lse = mx + std::log(l);
        ref.lse[(bi * c.nq + h) * c.s + i] = lse;
        const int64_t o = (bi * c.s + i) * a.out_stride + h * HD;
        double dd = 0;  // D = dO . out16
        for (int d = 0; d < HD; ++d) {
          for (int64_t j = 0; j <= i; ++j) ref.out[o + d] += p[j] / l * V(j, d);
          out16[o + d] = T(static_cast<float>(ref.out[o + d]));
          dd += dO(i, d) * static_cast<float>(out16[o + d]);
        }
        const double lse32 = static_cast<float>(lse);  // the kernels get lse in fp32
        for (int64_t j = 0; j <= i; ++j) {
          double s = 0, dp = 0;
          for (int d = 0; d < HD; ++d) s += Q(i, d) * K(j, d), dp += dO(i, d) * V(j, d);
          const double pij = std::exp(s * scale - lse32), ds = pij * (dp - dd) * scale;
          for (int d = 0; d < HD; ++d) {
            ref.dqkv[(bi * c.s + i) * a.qkv_stride + h * HD + d] += ds * K(j, d);
            ref.dqkv[(bi * c.s + j) * a.qkv_stride + k0 + kh * HD + d] += ds * Q(i, d);
            ref.dqkv[(bi * c.s + j) * a.qkv_stride + v0 + kh * HD + d] += pij * dO(i, d);
          }
        }
      }
    }
  return ref;
}

template <typename T>
std::vector<uint16_t> bits(const std::vector<T>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) b[i] = v[i].bits;
  return b;
}

// Columns [lo, hi) of every row, as doubles.
template <typename V>
std::vector<double> columns(const V& v, int64_t stride, int64_t lo, int64_t hi) {
  std::vector<double> out;
  for (size_t row = 0; row * stride < v.size(); ++row)
    for (int64_t col = lo; col < hi; ++col)
      out.push_back(static_cast<double>(static_cast<float>(v[row * stride + col])));
  return out;
}

::testing::AssertionResult no_emulator_errors() {
  if (emu::errors.count == 0) return ::testing::AssertionSuccess();
  auto failure = ::testing::AssertionFailure() << emu::errors.count << " emulator errors:";
  for (const std::string& e : emu::errors.first) failure << "\n  " << e;
  return failure;
}

template <int HD, typename T>
void check(const Shape& shape) {
  using A = Attention<HD, T>;
  A a(shape, 1000 + static_cast<uint32_t>(shape.s * shape.nq + HD));
  const Shape& c = a.c;
  const std::vector<T> qkv0 = a.qkv, dout0 = a.dout;
  std::vector<T> out16;
  const Reference ref = reference(a, out16);
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
  const std::vector<uint16_t> out1 = bits(a.out);
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
  const std::vector<uint16_t> dqkv1 = bits(a.dqkv);
  emu::options = {.deferred_copies = true, .shuffle_seed = 7};
  a.forward();
  EXPECT_EQ(bits(a.out), out1) << "out differs under another schedule";
  EXPECT_EQ(a.lse, lse1) << "lse differs under another schedule";
  a.backward(out16, lse32);
  emu::options = {};
  ASSERT_TRUE(no_emulator_errors()) << "shuffled, deferred copies";
  EXPECT_EQ(bits(a.dqkv), dqkv1) << "dqkv differs under another schedule";
}

class MmaAttention : public ::testing::TestWithParam<Shape> {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
  }
};

TEST_P(MmaAttention, MatchesFloat64ReferenceUnderTheEmulator) {
  const Shape& c = GetParam();
  if (c.hd == 64 && !c.fp16) check<64, bf16>(c);
  if (c.hd == 64 && c.fp16) check<64, fp16>(c);
  if (c.hd == 128 && !c.fp16) check<128, bf16>(c);
  if (c.hd == 128 && c.fp16) check<128, fp16>(c);
}

constexpr Shape kShapes[] = {
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
INSTANTIATE_TEST_SUITE_P(Shapes, MmaAttention, ::testing::ValuesIn(kShapes),
                         [](const auto& info) { return shape_name(info.param); });

}  // namespace
