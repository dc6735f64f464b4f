// RMSNorm (plain and fused with the residual add), RoPE, SwiGLU and embedding kernels on bf16
// storage against the fp32 CPU kernels run on the same bf16-rounded inputs. Each bf16 output is
// one rounding of an fp32 result, so its tolerance is the fp32 kernel's plus one unit roundoff
// (after_bf16_roundings, cuda_test_util.h); the fp32 outputs (rstd, dw, dtable) keep the fp32
// tolerance, and copies and same-order fp32 sums must match bit for bit.
#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::after_bf16_roundings;
using test::close_to_cpu;
using test::kFp32Elementwise;
using test::kFp32Reduction;
using test::rounded_to_bf16;
using test::to_device;
using test::to_device_bf16;
using test::to_host;
using test::to_host_float;

constexpr test::Tol kBf16Elementwise = after_bf16_roundings(kFp32Elementwise, 1);
constexpr test::Tol kBf16Reduction = after_bf16_roundings(kFp32Reduction, 1);

// ---- RMSNorm and RMSNorm + residual ------------------------------------------------------------

struct NormShape {
  int64_t n, h;
};
std::ostream& operator<<(std::ostream& os, const NormShape& s) {
  return os << "n=" << s.n << " h=" << s.h;
}

class CudaRMSNormBf16 : public test::CudaTestWithParam<NormShape> {
 protected:
  int64_t n = GetParam().n, h = GetParam().h;
  size_t nh = static_cast<size_t>(n * h);
  std::vector<float> x = rounded_to_bf16(test::randn(nh, 11));
  std::vector<float> r = rounded_to_bf16(test::randn(nh, 16));  // the residual stream
  std::vector<float> w = rounded_to_bf16(test::randn(static_cast<size_t>(h), 12));
  std::vector<float> dy = rounded_to_bf16(test::randn(nh, 13));
  std::vector<float> dx0 = rounded_to_bf16(test::randn(nh, 14));     // prior dx / dresid
  std::vector<float> dw0 = test::randn(static_cast<size_t>(h), 15);  // fp32 main_grad
  static constexpr float kEps = 1e-5f;
};

TEST_P(CudaRMSNormBf16, ForwardMatchesCpu) {
  std::vector<float> y(nh), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  auto g_x = to_device_bf16(x), g_w = to_device_bf16(w),
       g_y = to_device_bf16(std::vector<float>(nh));
  auto g_r = to_device(std::vector<float>(static_cast<size_t>(n)));
  ops::cuda::rmsnorm_forward(g_y.data(), g_r.data(), g_x.data(), g_w.data(), n, h, kEps, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_r), rstd, kFp32Elementwise));  // fp32, double sums
  EXPECT_TRUE(close_to_cpu(to_host_float(g_y), y, kBf16Elementwise));
}

TEST_P(CudaRMSNormBf16, BackwardMatchesCpuAndIsDeterministic) {
  std::vector<float> y(nh), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  std::vector<float> dx = dx0, dw = dw0;
  ops::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), n, h);
  auto g_x = to_device_bf16(x), g_w = to_device_bf16(w), g_dy = to_device_bf16(dy);
  auto g_r = to_device(rstd);
  std::vector<float> first_dw;
  for (int run = 0; run < 2; ++run) {
    auto g_dx = to_device_bf16(dx0);
    auto g_dw = to_device(dw0);
    ops::cuda::rmsnorm_backward(g_dx.data(), g_dw.data(), g_dy.data(), g_x.data(), g_w.data(),
                                g_r.data(), n, h, nullptr);
    const auto gpu_dw = to_host(g_dw);
    EXPECT_TRUE(close_to_cpu(to_host_float(g_dx), dx, kBf16Reduction));  // prior + term, rounded
    EXPECT_TRUE(close_to_cpu(gpu_dw, dw, kFp32Reduction));
    if (run == 0)
      first_dw = gpu_dw;
    else
      EXPECT_TRUE(test::same_bits(gpu_dw, first_dw)) << "weight gradient is not deterministic";
  }
}

// resid_out = bf16(x + r): the fp32 sum of two bf16 values rounded once, the same on both sides
// (so bit for bit); y normalises that rounded sum.
TEST_P(CudaRMSNormBf16, ResidualForwardMatchesAddThenNormIncludingInPlace) {
  std::vector<float> resid(nh), y(nh), rstd(static_cast<size_t>(n));
  for (size_t i = 0; i < nh; ++i) resid[i] = round_to_bf16(x[i] + r[i]);
  ops::rmsnorm_forward(y.data(), rstd.data(), resid.data(), w.data(), n, h, kEps);
  for (bool in_place : {false, true}) {
    SCOPED_TRACE(in_place ? "resid_out aliases x" : "separate resid_out");
    auto g_x = to_device_bf16(x), g_res = to_device_bf16(r), g_w = to_device_bf16(w);
    auto g_y = to_device_bf16(std::vector<float>(nh)),
         g_out = to_device_bf16(std::vector<float>(nh));
    auto g_rstd = to_device(std::vector<float>(static_cast<size_t>(n)));
    auto* out = in_place ? g_x.data() : g_out.data();
    ops::cuda::rmsnorm_residual_forward(g_y.data(), out, g_rstd.data(), g_x.data(), g_res.data(),
                                        g_w.data(), n, h, kEps, nullptr);
    EXPECT_TRUE(test::same_bits(to_host_float(in_place ? g_x : g_out), resid));
    EXPECT_TRUE(close_to_cpu(to_host(g_rstd), rstd, kFp32Elementwise));
    EXPECT_TRUE(close_to_cpu(to_host_float(g_y), y, kBf16Elementwise));
  }
}

// dsum = dresid + norm backward of dy: the CPU's rmsnorm_backward with dx starting at dresid.
TEST_P(CudaRMSNormBf16, ResidualBackwardAddsTheResidualGradient) {
  std::vector<float> resid(nh), y(nh), rstd(static_cast<size_t>(n));
  for (size_t i = 0; i < nh; ++i) resid[i] = round_to_bf16(x[i] + r[i]);
  ops::rmsnorm_forward(y.data(), rstd.data(), resid.data(), w.data(), n, h, kEps);
  auto g_res = to_device_bf16(resid), g_w = to_device_bf16(w), g_dy = to_device_bf16(dy);
  auto g_rstd = to_device(rstd);
  enum class Prior { separate, aliased, none };
  for (Prior prior : {Prior::separate, Prior::aliased, Prior::none}) {
    SCOPED_TRACE(static_cast<int>(prior));
    std::vector<float> dsum = prior == Prior::none ? std::vector<float>(nh, 0.0f) : dx0;
    std::vector<float> dw = dw0;
    ops::rmsnorm_backward(dsum.data(), dw.data(), dy.data(), resid.data(), w.data(), rstd.data(), n,
                          h);
    auto g_dresid = to_device_bf16(dx0), g_dsum = to_device_bf16(std::vector<float>(nh, 7.0f));
    auto g_dw = to_device(dw0);
    auto* out = prior == Prior::aliased ? g_dresid.data() : g_dsum.data();
    const auto* in = prior == Prior::none ? nullptr : g_dresid.data();
    ops::cuda::rmsnorm_residual_backward(out, g_dw.data(), g_dy.data(), in, g_res.data(),
                                         g_w.data(), g_rstd.data(), n, h, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host_float(prior == Prior::aliased ? g_dresid : g_dsum), dsum,
                             kBf16Reduction));
    EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Reduction));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaRMSNormBf16,
                         ::testing::Values(NormShape{1, 8}, NormShape{5, 33}, NormShape{130, 1000},
                                           NormShape{300, 2048}),
                         [](const auto& info) {
                           return "n" + std::to_string(info.param.n) + "_h" +
                                  std::to_string(info.param.h);
                         });

// ---- RoPE ------------------------------------------------------------------------------------

class CudaRopeBf16 : public test::CudaTest {};

// The rotated pairs are rounded once; the padding columns of the wider row keep their bits.
TEST_F(CudaRopeBf16, ForwardAndBackwardMatchCpuWithStrideAndOffset) {
  const int64_t b = 2, s = 7, heads = 3, hd = 16, stride = heads * hd + 10, pos0 = 5;
  const int64_t max_pos = pos0 + s;
  std::vector<float> cos(static_cast<size_t>(max_pos * hd / 2)), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), max_pos, hd, 10000.0);
  auto g_cos = to_device(cos), g_sin = to_device(sin);
  const auto x0 = rounded_to_bf16(test::randn(static_cast<size_t>(b * s * stride), 21));
  for (bool backward : {false, true}) {
    SCOPED_TRACE(backward ? "backward" : "forward");
    std::vector<float> x = x0;
    auto g_x = to_device_bf16(x0);
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
    EXPECT_TRUE(close_to_cpu(gx, x, kBf16Elementwise));
    for (int64_t row = 0; row < b * s; ++row)
      for (int64_t j = heads * hd; j < stride; ++j)
        ASSERT_EQ(gx[row * stride + j], x0[row * stride + j]) << "padding column moved";
  }
}

// ---- SwiGLU ----------------------------------------------------------------------------------

class CudaSwiGLUBf16 : public test::CudaTest {};

TEST_F(CudaSwiGLUBf16, ForwardAndBackwardMatchCpuIncludingInPlace) {
  const int64_t n = 37, f = 131;
  const auto gu = rounded_to_bf16(test::randn(static_cast<size_t>(n * 2 * f), 31, 3.0f));
  const auto dh = rounded_to_bf16(test::randn(static_cast<size_t>(n * f), 32));
  std::vector<float> h(static_cast<size_t>(n * f)), dgu(gu.size());
  ops::swiglu_forward(h.data(), gu.data(), n, f);
  ops::swiglu_backward(dgu.data(), dh.data(), gu.data(), n, f);
  auto g_gu = to_device_bf16(gu), g_dh = to_device_bf16(dh);
  auto g_h = to_device_bf16(std::vector<float>(h.size()));
  auto g_dgu = to_device_bf16(std::vector<float>(gu.size()));
  ops::cuda::swiglu_forward(g_h.data(), g_gu.data(), n, f, nullptr);
  ops::cuda::swiglu_backward(g_dgu.data(), g_dh.data(), g_gu.data(), n, f, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host_float(g_h), h, kBf16Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host_float(g_dgu), dgu, kBf16Elementwise));
  ops::cuda::swiglu_backward(g_gu.data(), g_dh.data(), g_gu.data(), n, f, nullptr);  // aliased
  EXPECT_TRUE(close_to_cpu(to_host_float(g_gu), dgu, kBf16Elementwise));
}

// ---- Embedding -------------------------------------------------------------------------------

class CudaEmbeddingBf16 : public test::CudaTest {};

// Forward is a copy of bf16 rows (exact); backward adds bf16 dx into the fp32 gradient in token
// order, the CPU's sums over the same values: both bit for bit.
TEST_F(CudaEmbeddingBf16, VocabRangeForwardAndBackwardMatchCpuBitForBit) {
  const int64_t n = 300, h = 100, vocab_begin = 40, rows = 50;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 37) % 128);  // repeats
  ids[3] = ids[9] = ids[200] = 41;
  const auto table = rounded_to_bf16(test::randn(static_cast<size_t>(rows * h), 41));
  const auto dx = rounded_to_bf16(test::randn(static_cast<size_t>(n * h), 42));
  const auto dtable0 = test::randn(table.size(), 43);
  std::vector<float> x(static_cast<size_t>(n * h)), dtable = dtable0;
  ops::embedding_forward(x.data(), ids.data(), table.data(), n, h, vocab_begin, rows);
  ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, h, vocab_begin, rows);
  auto g_ids = to_device(ids);
  auto g_table = to_device_bf16(table), g_dx = to_device_bf16(dx);
  auto g_x = to_device_bf16(std::vector<float>(x.size(), 7.0f));
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
