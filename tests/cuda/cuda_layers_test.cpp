// RMSNorm (also fused with the residual add), RoPE, SwiGLU and embedding kernels on the GPU
// against the CPU kernels, fp32, over
// shapes that are not multiples of the block sizes; the gradients' "+=" semantics (outputs start
// from random prior contents) and the deterministic reductions (two runs, same bits).
#include <gtest/gtest.h>

#include <ostream>

#include <cstdint>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kFp32Elementwise;
using test::kFp32Reduction;
using test::to_device;
using test::to_host;

// ---- RMSNorm ---------------------------------------------------------------------------------

struct NormShape {
  int64_t n, h;
};
std::ostream& operator<<(std::ostream& os, const NormShape& s) {
  return os << "n=" << s.n << " h=" << s.h;
}

class CudaRMSNorm : public test::CudaTestWithParam<NormShape> {
 protected:
  int64_t n = GetParam().n, h = GetParam().h;
  size_t nh = static_cast<size_t>(n * h);
  std::vector<float> x = test::randn(nh, 11), w = test::randn(static_cast<size_t>(h), 12);
  std::vector<float> dy = test::randn(nh, 13), dx0 = test::randn(nh, 14);
  std::vector<float> dw0 = test::randn(static_cast<size_t>(h), 15);
  static constexpr float kEps = 1e-5f;
};

TEST_P(CudaRMSNorm, ForwardAndRstdMatchCpu) {
  std::vector<float> y(nh), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  auto g_x = to_device(x), g_w = to_device(w), g_y = to_device(std::vector<float>(nh));
  auto g_r = to_device(std::vector<float>(static_cast<size_t>(n)));
  ops::cuda::rmsnorm_forward(g_y.data(), g_r.data(), g_x.data(), g_w.data(), n, h, kEps, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_r), rstd, kFp32Elementwise));  // double sums on both
  EXPECT_TRUE(close_to_cpu(to_host(g_y), y, kFp32Elementwise));
}

TEST_P(CudaRMSNorm, BackwardAccumulatesLikeCpuAndIsDeterministic) {
  std::vector<float> y(nh), rstd(static_cast<size_t>(n));
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
  std::vector<float> dx = dx0, dw = dw0;
  ops::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), n, h);
  auto g_x = to_device(x), g_w = to_device(w), g_dy = to_device(dy), g_r = to_device(rstd);
  std::vector<float> first_dw;
  for (int run = 0; run < 2; ++run) {
    auto g_dx = to_device(dx0), g_dw = to_device(dw0);
    ops::cuda::rmsnorm_backward(g_dx.data(), g_dw.data(), g_dy.data(), g_x.data(), g_w.data(),
                                g_r.data(), n, h, nullptr);
    auto gpu_dw = to_host(g_dw);
    EXPECT_TRUE(close_to_cpu(to_host(g_dx), dx, kFp32Reduction));
    EXPECT_TRUE(close_to_cpu(gpu_dw, dw, kFp32Reduction));
    if (run == 0)
      first_dw = gpu_dw;
    else
      EXPECT_TRUE(test::same_bits(gpu_dw, first_dw)) << "weight gradient is not deterministic";
  }
}

// The fusion against its definition on the CPU: resid_out = x + r (the same fp32 add, so the
// same bits), y = rmsnorm(resid_out); backward: rmsnorm_backward with dx starting at dresid.
TEST_P(CudaRMSNorm, ResidualForwardAndBackwardMatchAddThenNorm) {
  const auto r = test::randn(nh, 16);
  std::vector<float> resid(nh), y(nh), rstd(static_cast<size_t>(n));
  for (size_t i = 0; i < nh; ++i) resid[i] = x[i] + r[i];
  ops::rmsnorm_forward(y.data(), rstd.data(), resid.data(), w.data(), n, h, kEps);
  std::vector<float> dsum = dx0, dw = dw0;  // dx0 plays dresid
  ops::rmsnorm_backward(dsum.data(), dw.data(), dy.data(), resid.data(), w.data(), rstd.data(), n,
                        h);
  auto g_x = to_device(x), g_r = to_device(r), g_w = to_device(w), g_y = to_device(y);
  auto g_out = to_device(std::vector<float>(nh)), g_rstd = to_device(rstd);
  ops::cuda::rmsnorm_residual_forward(g_y.data(), g_out.data(), g_rstd.data(), g_x.data(),
                                      g_r.data(), g_w.data(), n, h, kEps, nullptr);
  EXPECT_TRUE(test::same_bits(to_host(g_out), resid));
  EXPECT_TRUE(close_to_cpu(to_host(g_rstd), rstd, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host(g_y), y, kFp32Elementwise));
  auto g_dy = to_device(dy), g_dresid = to_device(dx0), g_dw = to_device(dw0);
  auto g_dsum = to_device(std::vector<float>(nh, 7.0f));
  ops::cuda::rmsnorm_residual_backward(g_dsum.data(), g_dw.data(), g_dy.data(), g_dresid.data(),
                                       g_out.data(), g_w.data(), g_rstd.data(), n, h, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_dsum), dsum, kFp32Reduction));
  EXPECT_TRUE(close_to_cpu(to_host(g_dw), dw, kFp32Reduction));
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaRMSNorm,
                         ::testing::Values(NormShape{1, 8}, NormShape{5, 33}, NormShape{64, 256},
                                           NormShape{130, 1000}, NormShape{300, 2048}),
                         [](const auto& info) {
                           return "n" + std::to_string(info.param.n) + "_h" +
                                  std::to_string(info.param.h);
                         });

// ---- RoPE ------------------------------------------------------------------------------------

class CudaRope : public test::CudaTest {};

// x lives inside a wider row (a fused qkv buffer): the columns beyond heads * hd must not move.
TEST_F(CudaRope, ForwardAndBackwardMatchCpuWithStrideAndOffset) {
  const int64_t b = 2, s = 7, heads = 3, hd = 16, stride = heads * hd + 10, pos0 = 5;
  const int64_t max_pos = pos0 + s;
  std::vector<float> cos(static_cast<size_t>(max_pos * hd / 2)), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), max_pos, hd, 10000.0);
  auto g_cos = to_device(cos), g_sin = to_device(sin);
  const auto x0 = test::randn(static_cast<size_t>(b * s * stride), 21);
  for (bool backward : {false, true}) {
    SCOPED_TRACE(backward ? "backward" : "forward");
    std::vector<float> x = x0;
    auto g_x = to_device(x0);
    if (backward) {
      ops::rope_backward(x.data(), cos.data(), sin.data(), b, s, heads, hd, stride, pos0);
      ops::cuda::rope_backward(g_x.data(), g_cos.data(), g_sin.data(), b, s, heads, hd, stride,
                               pos0, nullptr);
    } else {
      ops::rope_forward(x.data(), cos.data(), sin.data(), b, s, heads, hd, stride, pos0);
      ops::cuda::rope_forward(g_x.data(), g_cos.data(), g_sin.data(), b, s, heads, hd, stride, pos0,
                              nullptr);
    }
    const auto gx = to_host(g_x);
    EXPECT_TRUE(close_to_cpu(gx, x, kFp32Elementwise));
    for (int64_t row = 0; row < b * s; ++row)
      for (int64_t j = heads * hd; j < stride; ++j)
        ASSERT_EQ(gx[row * stride + j], x0[row * stride + j]) << "padding column moved";
  }
}

// ---- SwiGLU ----------------------------------------------------------------------------------

class CudaSwiGLU : public test::CudaTest {};

TEST_F(CudaSwiGLU, ForwardAndBackwardMatchCpuIncludingInPlace) {
  const int64_t n = 37, f = 131;
  const auto gu = test::randn(static_cast<size_t>(n * 2 * f), 31, 3.0f);
  const auto dh = test::randn(static_cast<size_t>(n * f), 32);
  std::vector<float> h(static_cast<size_t>(n * f)), dgu(gu.size());
  ops::swiglu_forward(h.data(), gu.data(), n, f);
  ops::swiglu_backward(dgu.data(), dh.data(), gu.data(), n, f);
  auto g_gu = to_device(gu), g_dh = to_device(dh), g_h = to_device(std::vector<float>(h.size()));
  auto g_dgu = to_device(std::vector<float>(gu.size()));
  ops::cuda::swiglu_forward(g_h.data(), g_gu.data(), n, f, nullptr);
  ops::cuda::swiglu_backward(g_dgu.data(), g_dh.data(), g_gu.data(), n, f, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_h), h, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(to_host(g_dgu), dgu, kFp32Elementwise));
  ops::cuda::swiglu_backward(g_gu.data(), g_dh.data(), g_gu.data(), n, f, nullptr);  // aliased
  EXPECT_TRUE(close_to_cpu(to_host(g_gu), dgu, kFp32Elementwise));
}

// ---- Embedding -------------------------------------------------------------------------------

class CudaEmbedding : public test::CudaTest {};

// A rank's vocabulary slice [vocab_begin, vocab_begin + rows) with repeated ids and ids on both
// sides of it: zero rows forward, no gradient backward, the same bits as the CPU (both add each
// column's tokens in token order).
TEST_F(CudaEmbedding, VocabRangeForwardAndBackwardMatchCpuBitForBit) {
  const int64_t n = 300, h = 100, vocab_begin = 40, rows = 50;
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>((i * 37) % 128);  // repeats
  ids[3] = ids[9] = ids[200] = 41;
  const auto table = test::randn(static_cast<size_t>(rows * h), 41);
  const auto dx = test::randn(static_cast<size_t>(n * h), 42);
  const auto dtable0 = test::randn(table.size(), 43);
  std::vector<float> x(static_cast<size_t>(n * h)), dtable = dtable0;
  ops::embedding_forward(x.data(), ids.data(), table.data(), n, h, vocab_begin, rows);
  ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, h, vocab_begin, rows);
  auto g_ids = to_device(ids);
  auto g_table = to_device(table), g_dx = to_device(dx);
  auto g_x = to_device(std::vector<float>(x.size(), 7.0f)), g_dtable = to_device(dtable0);
  ops::cuda::embedding_forward(g_x.data(), g_ids.data(), g_table.data(), n, h, vocab_begin, rows,
                               nullptr);
  ops::cuda::embedding_backward(g_dtable.data(), g_dx.data(), g_ids.data(), n, h, vocab_begin, rows,
                                nullptr);
  EXPECT_TRUE(test::same_bits(to_host(g_x), x));
  EXPECT_TRUE(test::same_bits(to_host(g_dtable), dtable));
}

}  // namespace
}  // namespace mds
