// RMSNorm (plain and fused with the residual add), RoPE, SwiGLU and embedding kernels on 16-bit
// storage (bf16 and fp16, typed tests) against the fp32 CPU kernels run on the same H-rounded
// inputs. Each 16-bit output is one rounding of an fp32 result, so its tolerance is the fp32
// kernel's plus one unit roundoff of H (after_roundings, cuda_test_util.h); the fp32 outputs
// (rstd, dw, dtable) keep the fp32 tolerance, and copies and same-order fp32 sums must match bit
// for bit.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kFp32Elementwise;
using test::kFp32Reduction;
using test::randn_half;
using test::to_device;
using test::to_device_half;
using test::to_host;
using test::to_host_float;

// Tolerances of H: one rounding after the fp32 kernel.
template <typename H>
struct HalfTol {
  static constexpr test::Tol elementwise = test::after_roundings<H>(kFp32Elementwise, 1);
  static constexpr test::Tol reduction = test::after_roundings<H>(kFp32Reduction, 1);
};

// ---- RMSNorm and RMSNorm + residual ------------------------------------------------------------

struct NormShape {
  int64_t n, h;
};
std::ostream& operator<<(std::ostream& os, const NormShape& s) {
  return os << "n=" << s.n << " h=" << s.h;
}

constexpr NormShape kNormShapes[] = {{1, 8}, {5, 33}, {130, 1000}, {300, 2048}};
constexpr float kEps = 1e-5f;

// The inputs of one shape, rounded to H (dw0, the fp32 main_grad, is not).
template <typename H>
struct NormCase {
  explicit NormCase(const NormShape& s) : n(s.n), h(s.h) {}
  int64_t n, h;
  size_t nh = static_cast<size_t>(n * h);
  std::vector<float> x = randn_half<H>(nh, 11);
  std::vector<float> r = randn_half<H>(nh, 16);  // the residual stream
  std::vector<float> w = randn_half<H>(static_cast<size_t>(h), 12);
  std::vector<float> dy = randn_half<H>(nh, 13);
  std::vector<float> dx0 = randn_half<H>(nh, 14);                    // prior dx / dresid
  std::vector<float> dw0 = test::randn(static_cast<size_t>(h), 15);  // fp32 main_grad
  // resid_out = H(x + r): the fp32 sum of two H values rounded once, the same on both devices.
  std::vector<float> resid() const {
    std::vector<float> sum(nh);
    for (size_t i = 0; i < nh; ++i) sum[i] = static_cast<float>(H(x[i] + r[i]));
    return sum;
  }
  // The CPU norm of `in` (x, or the rounded residual sum): y and rstd.
  void cpu_forward(const std::vector<float>& in, std::vector<float>& y,
                   std::vector<float>& rstd) const {
    y.assign(nh, 0.0f);
    rstd.assign(static_cast<size_t>(n), 0.0f);
    ops::rmsnorm_forward(y.data(), rstd.data(), in.data(), w.data(), n, h, kEps);
  }
};

template <typename H>
class CudaRMSNormHalf : public test::CudaTest {};
TYPED_TEST_SUITE(CudaRMSNormHalf, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CudaRMSNormHalf, ForwardMatchesCpu) {
  using H = TypeParam;
  for (const NormShape& shape : kNormShapes) {
    SCOPED_TRACE(shape);
    const NormCase<H> c(shape);
    std::vector<float> y, rstd;
    c.cpu_forward(c.x, y, rstd);
    auto g_x = to_device_half<H>(c.x), g_w = to_device_half<H>(c.w),
         g_y = to_device_half<H>(std::vector<float>(c.nh));
    auto g_r = to_device(std::vector<float>(static_cast<size_t>(c.n)));
    ops::cuda::rmsnorm_forward(g_y.data(), g_r.data(), g_x.data(), g_w.data(), c.n, c.h, kEps,
                               nullptr);
    EXPECT_TRUE(close_to_cpu(to_host(g_r), rstd, kFp32Elementwise));  // fp32, double sums
    EXPECT_TRUE(close_to_cpu(to_host_float(g_y), y, HalfTol<H>::elementwise));
  }
}

TYPED_TEST(CudaRMSNormHalf, BackwardMatchesCpuAndIsDeterministic) {
  using H = TypeParam;
  for (const NormShape& shape : kNormShapes) {
    SCOPED_TRACE(shape);
    const NormCase<H> c(shape);
    std::vector<float> y, rstd;
    c.cpu_forward(c.x, y, rstd);
    std::vector<float> dx = c.dx0, dw = c.dw0;
    ops::rmsnorm_backward(dx.data(), dw.data(), c.dy.data(), c.x.data(), c.w.data(), rstd.data(),
                          c.n, c.h);
    auto g_x = to_device_half<H>(c.x), g_w = to_device_half<H>(c.w), g_dy = to_device_half<H>(c.dy);
    auto g_r = to_device(rstd);
    std::vector<float> first_dw;
    for (int run = 0; run < 2; ++run) {
      auto g_dx = to_device_half<H>(c.dx0);
      auto g_dw = to_device(c.dw0);
      ops::cuda::rmsnorm_backward(g_dx.data(), g_dw.data(), g_dy.data(), g_x.data(), g_w.data(),
                                  g_r.data(), c.n, c.h, nullptr);
      const auto gpu_dw = to_host(g_dw);
      // dx: prior + term, rounded once.
      EXPECT_TRUE(close_to_cpu(to_host_float(g_dx), dx, HalfTol<H>::reduction));
      EXPECT_TRUE(close_to_cpu(gpu_dw, dw, kFp32Reduction));
      if (run == 0)
        first_dw = gpu_dw;
      else
        EXPECT_TRUE(test::same_bits(gpu_dw, first_dw)) << "weight gradient is not deterministic";
    }
  }
}

// resid_out = H(x + r), bit for bit; y normalises that rounded sum.
TYPED_TEST(CudaRMSNormHalf, ResidualForwardMatchesAddThenNormIncludingInPlace) {
  using H = TypeParam;
  for (const NormShape& shape : kNormShapes) {
    SCOPED_TRACE(shape);
    const NormCase<H> c(shape);
    const std::vector<float> resid = c.resid();
    std::vector<float> y, rstd;
    c.cpu_forward(resid, y, rstd);
    for (bool in_place : {false, true}) {
      SCOPED_TRACE(in_place ? "resid_out aliases x" : "separate resid_out");
      auto g_x = to_device_half<H>(c.x), g_res = to_device_half<H>(c.r),
           g_w = to_device_half<H>(c.w);
      auto g_y = to_device_half<H>(std::vector<float>(c.nh)),
           g_out = to_device_half<H>(std::vector<float>(c.nh));
      auto g_rstd = to_device(std::vector<float>(static_cast<size_t>(c.n)));
      auto* out = in_place ? g_x.data() : g_out.data();
      ops::cuda::rmsnorm_residual_forward(g_y.data(), out, g_rstd.data(), g_x.data(), g_res.data(),
                                          g_w.data(), c.n, c.h, kEps, nullptr);
      EXPECT_TRUE(test::same_bits(to_host_float(in_place ? g_x : g_out), resid));
      EXPECT_TRUE(close_to_cpu(to_host(g_rstd), rstd, kFp32Elementwise));
      EXPECT_TRUE(close_to_cpu(to_host_float(g_y), y, HalfTol<H>::elementwise));
    }
  }
}

// dsum = dresid + norm backward of dy: the CPU's rmsnorm_backward with dx starting at dresid.
TYPED_TEST(CudaRMSNormHalf, ResidualBackwardAddsTheResidualGradient) {
  using H = TypeParam;
  for (const NormShape& shape : kNormShapes) {
    SCOPED_TRACE(shape);
    const NormCase<H> c(shape);
    const std::vector<float> resid = c.resid();
    std::vector<float> y, rstd;
    c.cpu_forward(resid, y, rstd);
    auto g_res = to_device_half<H>(resid), g_w = to_device_half<H>(c.w),
         g_dy = to_device_half<H>(c.dy);
    auto g_rstd = to_device(rstd);
    enum class Prior { separate, aliased, none };
    for (Prior prior : {Prior::separate, Prior::aliased, Prior::none}) {
      SCOPED_TRACE(static_cast<int>(prior));
      std::vector<float> dsum = prior == Prior::none ? std::vector<float>(c.nh, 0.0f) : c.dx0;
      std::vector<float> dw = c.dw0;
      ops::rmsnorm_backward(dsum.data(), dw.data(), c.dy.data(), resid.data(), c.w.data(),
                            rstd.data(), c.n, c.h);
      auto g_dresid = to_device_half<H>(c.dx0),
           g_dsum = to_device_half<H>(std::vector<float>(c.nh, 7.0f));
      auto g_dw = to_device(c.dw0);
      auto* out = prior == Prior::aliased ? g_dresid.data() : g_dsum.data();
      const auto* in = prior == Prior::none ? nullptr : g_dresid.data();
      ops::cuda::rmsnorm_residual_backward(out, g_dw.data(), g_dy.data(), in, g_res.data(),
                                           g_w.data(), g_rstd.data(), c.n, c.h, nullptr);
      EXPECT_TRUE(close_to_cpu(to_host_float(prior == Prior::aliased ? g_dresid : g_dsum), dsum,
                               HalfTol<H>::reduction));
      EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Reduction));
    }
  }
}

// ---- RoPE, SwiGLU, embedding -------------------------------------------------------------------

template <typename H>
class CudaLayersHalf : public test::CudaTest {};
TYPED_TEST_SUITE(CudaLayersHalf, test::HalfTypes, test::HalfTypeName);

// The rotated pairs are rounded once; the padding columns of the wider row keep their bits.
TYPED_TEST(CudaLayersHalf, RopeForwardAndBackwardMatchCpuWithStrideAndOffset) {
  using H = TypeParam;
  const int64_t b = 2, s = 7, heads = 3, hd = 16, stride = heads * hd + 10, pos0 = 5;
  const int64_t max_pos = pos0 + s;
  std::vector<float> cos(static_cast<size_t>(max_pos * hd / 2)), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), max_pos, hd, 10000.0);
  auto g_cos = to_device(cos), g_sin = to_device(sin);
  const auto x0 = randn_half<H>(static_cast<size_t>(b * s * stride), 21);
  for (bool backward : {false, true}) {
    SCOPED_TRACE(backward ? "backward" : "forward");
    std::vector<float> x = x0;
    auto g_x = to_device_half<H>(x0);
    if (backward) {
      ops::rope_backward(x.data(), cos.data(), sin.data(), b, s, heads, hd, stride, pos0);
      ops::cuda::rope_backward(g_x.data(), g_cos.data(), g_sin.data(), b, s, heads, hd, stride,
                               pos0, nullptr);
    } else {
      ops::rope_forward(x.data(), cos.data(), sin.data(), b, s, heads, hd, stride, pos0);
      ops::cuda::rope_forward(g_x.data(), g_cos.data(), g_sin.data(), b, s, heads, hd, stride, pos0,
                              nullptr);
    }
    const auto gx = to_host_float(g_x);
    EXPECT_TRUE(close_to_cpu(gx, x, HalfTol<H>::elementwise));
    for (int64_t row = 0; row < b * s; ++row)
      for (int64_t j = heads * hd; j < stride; ++j)
        ASSERT_EQ(gx[row * stride + j], x0[row * stride + j]) << "padding column moved";
  }
}

TYPED_TEST(CudaLayersHalf, SwigluForwardAndBackwardMatchCpuIncludingInPlace) {
  using H = TypeParam;
  const int64_t n = 37, f = 131;
  const auto gu = randn_half<H>(static_cast<size_t>(n * 2 * f), 31, 3.0f);
  const auto dh = randn_half<H>(static_cast<size_t>(n * f), 32);
  std::vector<float> h(static_cast<size_t>(n * f)), dgu(gu.size());
  ops::swiglu_forward(h.data(), gu.data(), n, f);
  ops::swiglu_backward(dgu.data(), dh.data(), gu.data(), n, f);
  auto g_gu = to_device_half<H>(gu), g_dh = to_device_half<H>(dh);
  auto g_h = to_device_half<H>(std::vector<float>(h.size()));
  auto g_dgu = to_device_half<H>(std::vector<float>(gu.size()));
  ops::cuda::swiglu_forward(g_h.data(), g_gu.data(), n, f, nullptr);
  ops::cuda::swiglu_backward(g_dgu.data(), g_dh.data(), g_gu.data(), n, f, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host_float(g_h), h, HalfTol<H>::elementwise));
  EXPECT_TRUE(close_to_cpu(to_host_float(g_dgu), dgu, HalfTol<H>::elementwise));
  ops::cuda::swiglu_backward(g_gu.data(), g_dh.data(), g_gu.data(), n, f, nullptr);  // aliased
  EXPECT_TRUE(close_to_cpu(to_host_float(g_gu), dgu, HalfTol<H>::elementwise));
}

// Forward is a copy of 16-bit rows (exact); backward adds 16-bit dx into the fp32 gradient in
// token order, the CPU's sums over the same values: both bit for bit.
TYPED_TEST(CudaLayersHalf, EmbeddingVocabRangeForwardAndBackwardMatchCpuBitForBit) {
  using H = TypeParam;
  const int64_t n = 300, h = 100, vocab_begin = 40, rows = 50;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 37) % 128);  // repeats
  ids[3] = ids[9] = ids[200] = 41;
  const auto table = randn_half<H>(static_cast<size_t>(rows * h), 41);
  const auto dx = randn_half<H>(static_cast<size_t>(n * h), 42);
  const auto dtable0 = test::randn(table.size(), 43);
  std::vector<float> x(static_cast<size_t>(n * h)), dtable = dtable0;
  ops::embedding_forward(x.data(), ids.data(), table.data(), n, h, vocab_begin, rows);
  ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, h, vocab_begin, rows);
  auto g_ids = to_device(ids);
  auto g_table = to_device_half<H>(table), g_dx = to_device_half<H>(dx);
  auto g_x = to_device_half<H>(std::vector<float>(x.size(), 7.0f));
  auto g_dtable = to_device(dtable0);
  ops::cuda::embedding_forward(g_x.data(), g_ids.data(), g_table.data(), n, h, vocab_begin, rows,
                               nullptr);
  ops::cuda::embedding_backward(g_dtable.data(), g_dx.data(), g_ids.data(), n, h, vocab_begin, rows,
                                nullptr);
  EXPECT_TRUE(test::same_bits(to_host_float(g_x), x));
  EXPECT_TRUE(test::same_bits(to_host(g_dtable), dtable));
}

}  // namespace
}  // namespace mds
