// The 16-bit halves of the CUDA backend (ops/backend.h on ops/cuda's bf16 and fp16 kernels; typed
// tests over H) against those of the CPU backend (the reference, ops/cpu/half_reference.h),
// method by method, on the same H inputs through Buffer<H>: what the 16-bit model will call on
// either device. The kernels themselves are tested against the fp32 CPU kernels in
// cuda_half_*_test.cpp; this proves the backend hands each one its arguments in the right order
// and types (mds::bf16 as __nv_bfloat16, mds::fp16 as __half). One fp16 test checks that an
// overflow is inf on both devices, as the loss scaler needs.
//
// Tolerances: both sides round an fp32 result of the same inputs, a and c with |a - c| within
// the fp32 tolerance of the kernel (cuda_test_util.h). Then
//   |H(a) - H(c)| <= u|a| + |a - c| + u|c| (+ 2 eta, subnormals),
// and measured against |H(c)| (>= (1 - u)|c|) that is within three applications of
// after_roundings<H>: one rounding per side and one more that covers the (1 + u) factors.
// fp32 outputs keep the fp32 tolerance; copies, conversions, same-order fp32 sums and the add of
// two H values (one exact fp32 operation) must match bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "mds/core/bf16.h"
#include "mds/core/buffer.h"
#include "mds/core/fp16.h"
#include "mds/ops/backend.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::Tol;

template <typename H>
struct BothRounded {
  static constexpr Tol of(Tol fp32) { return test::after_roundings<H>(fp32, 3); }
  static constexpr Tol elementwise = of(test::kFp32Elementwise);
  static constexpr Tol reduction = of(test::kFp32Reduction);
  static constexpr Tol gemm = of(test::kHalfGemmFp32Sums);
  static constexpr Tol attn_out = of(test::kAttnForward);
  static constexpr Tol attn_grad = of(test::kAttnBackward);
};

ops::Backend& cpu() {
  return ops::cpu_backend();
}
ops::Backend& gpu() {
  return ops::backend_for(ops::Device::cuda);
}

template <typename T>
Buffer<T> put(ops::Backend& be, const std::vector<T>& host) {
  Buffer<T> b(be, static_cast<int64_t>(host.size()));
  b.upload(host.data(), b.size());
  return b;
}
// H values (rounded to nearest even) in a Buffer<H>.
template <typename H>
Buffer<H> put_half(ops::Backend& be, const std::vector<float>& host) {
  return put(be, std::vector<H>(host.begin(), host.end()));
}
// A buffer's values as fp32 (exact, whatever the storage type).
template <typename T>
std::vector<float> get(const Buffer<T>& b) {
  const std::vector<T> h = b.to_host();
  return {h.begin(), h.end()};
}

// Runs `f` on the CPU backend and then on the GPU backend; f returns its outputs as fp32.
template <typename F>
void compare(F f, const std::vector<Tol>& tols, const char* what) {
  const std::vector<std::vector<float>> want = f(cpu()), got = f(gpu());
  ASSERT_EQ(want.size(), tols.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(close_to_cpu(got[i], want[i], tols[i])) << what << ", output " << i;
}
template <typename F>
void compare_bits(F f, const char* what) {
  const std::vector<std::vector<float>> want = f(cpu()), got = f(gpu());
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(test::same_bits(got[i], want[i])) << what << ", output " << i;
}

using Outputs = std::vector<std::vector<float>>;

template <typename H>
class CudaHalfBackend : public test::CudaTest {};
TYPED_TEST_SUITE(CudaHalfBackend, test::HalfTypes, test::HalfTypeName);

class CudaFp32Backend : public test::CudaTest {};
class CudaFp16Backend : public test::CudaTest {};

TYPED_TEST(CudaHalfBackend, LinearMatchesTheCpuBackend) {
  using H = TypeParam;
  using R = BothRounded<H>;
  constexpr int64_t m = 40, k = 96, n = 72;
  const auto x = test::randn_half<H>(m * k, 1), w = test::randn_half<H>(n * k, 2),
             dy = test::randn_half<H>(m * n, 3), dx0 = test::randn_half<H>(m * k, 4);
  const auto dw0 = test::randn(n * k, 5);
  compare(
      [&](ops::Backend& be) {
        auto bx = put_half<H>(be, x), bw = put_half<H>(be, w), bdy = put_half<H>(be, dy);
        auto by = put_half<H>(be, std::vector<float>(m * n)), bdx = put_half<H>(be, dx0);
        auto bdw = put(be, dw0);
        be.linear_forward(by.data(), bx.data(), bw.data(), m, k, n);
        be.linear_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), m, k, n, true);
        return Outputs{get(by), get(bdx), get(bdw)};
      },
      {R::gemm, R::gemm, test::kHalfGemmFp32Sums}, "linear");
}

TYPED_TEST(CudaHalfBackend, RmsnormAndTheFusedResidualFormMatchTheCpuBackend) {
  using H = TypeParam;
  using R = BothRounded<H>;
  constexpr int64_t n = 33, h = 200;
  constexpr float eps = 1e-5f;
  const auto x = test::randn_half<H>(n * h, 6), r = test::randn_half<H>(n * h, 7),
             w = test::randn_half<H>(h, 8), dy = test::randn_half<H>(n * h, 9);
  const auto dx0 = test::randn_half<H>(n * h, 10), dw0 = test::randn(h, 11);
  compare(
      [&](ops::Backend& be) {
        auto bx = put_half<H>(be, x), bw = put_half<H>(be, w), bdy = put_half<H>(be, dy);
        auto by = put_half<H>(be, std::vector<float>(n * h)), bdx = put_half<H>(be, dx0);
        auto brstd = put(be, std::vector<float>(n)), bdw = put(be, dw0);
        be.rmsnorm_forward(by.data(), brstd.data(), bx.data(), bw.data(), n, h, eps);
        be.rmsnorm_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), brstd.data(),
                            n, h);
        return Outputs{get(by), get(brstd), get(bdx), get(bdw)};
      },
      {R::elementwise, test::kFp32Reduction, R::reduction, test::kFp32Reduction}, "rmsnorm");
  compare(
      [&](ops::Backend& be) {
        auto bx = put_half<H>(be, x), br = put_half<H>(be, r), bw = put_half<H>(be, w);
        auto bdy = put_half<H>(be, dy), bdr = put_half<H>(be, dx0);
        auto by = put_half<H>(be, std::vector<float>(n * h));
        auto brstd = put(be, std::vector<float>(n)), bdw = put(be, dw0);
        // resid_out aliases x; dsum aliases dresid (the residual stream updated in place).
        be.rmsnorm_residual_forward(by.data(), bx.data(), brstd.data(), bx.data(), br.data(),
                                    bw.data(), n, h, eps);
        be.rmsnorm_residual_backward(bdr.data(), bdw.data(), bdy.data(), bdr.data(), bx.data(),
                                     bw.data(), brstd.data(), n, h);
        return Outputs{get(bx), get(by), get(brstd), get(bdr), get(bdw)};
      },
      {R::elementwise, R::elementwise, test::kFp32Reduction, R::reduction, test::kFp32Reduction},
      "rmsnorm + residual");
}

// The fp32 fused form, the same calls on fp32 buffers.
TEST_F(CudaFp32Backend, RmsnormResidualMatchesTheCpuBackend) {
  constexpr int64_t n = 33, h = 200;
  constexpr float eps = 1e-5f;
  const auto x = test::randn(n * h, 6), r = test::randn(n * h, 7), w = test::randn(h, 8),
             dy = test::randn(n * h, 9), dw0 = test::randn(h, 11);
  compare(
      [&](ops::Backend& be) {
        auto bx = put(be, x), br = put(be, r), bw = put(be, w), bdy = put(be, dy);
        auto bs = put(be, std::vector<float>(n * h)), by = put(be, std::vector<float>(n * h));
        auto brstd = put(be, std::vector<float>(n)), bdw = put(be, dw0);
        auto bdsum = put(be, std::vector<float>(n * h));
        be.rmsnorm_residual_forward(by.data(), bs.data(), brstd.data(), bx.data(), br.data(),
                                    bw.data(), n, h, eps);
        be.rmsnorm_residual_backward(bdsum.data(), bdw.data(), bdy.data(), nullptr, bs.data(),
                                     bw.data(), brstd.data(), n, h);
        return Outputs{get(bs), get(by), get(brstd), get(bdsum), get(bdw)};
      },
      {test::kFp32Elementwise, test::kFp32Reduction, test::kFp32Reduction, test::kFp32Reduction,
       test::kFp32Reduction},
      "fp32 rmsnorm + residual");
}

// Two sequences of 70 tokens (several tiles), 4 query heads of 64 over 2 kv heads, in a fused
// qkv buffer with padding between the rows; RoPE rotates the q heads in place from position 5.
TYPED_TEST(CudaHalfBackend, RopeAndAttentionOnAFusedQkvBufferMatchTheCpuBackend) {
  using H = TypeParam;
  using R = BothRounded<H>;
  constexpr int64_t b = 2, s = 70, nq = 4, nkv = 2, hd = 64;
  constexpr int64_t stride = (nq + 2 * nkv) * hd + 8, out_stride = nq * hd + 4;
  std::vector<float> cos(128 * hd / 2), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), 128, hd, 10000.0);
  const auto qkv = test::randn_half<H>(b * s * stride, 12),
             dout = test::randn_half<H>(b * s * out_stride, 13);
  compare(
      [&](ops::Backend& be) {
        auto bf = put_half<H>(be, qkv), bb = put_half<H>(be, qkv);
        auto bcos = put(be, cos), bsin = put(be, sin);
        be.rope_forward(bf.data(), bcos.data(), bsin.data(), b, s, nq, hd, stride, 5);
        be.rope_backward(bb.data(), bcos.data(), bsin.data(), b, s, nq, hd, stride, 5);
        return Outputs{get(bf), get(bb)};
      },
      {R::elementwise, R::elementwise}, "rope");
  // The forward; then the backward of both devices from the same out and lse (the CPU's), so
  // that a one-ulp difference of the stored 16-bit out does not enter D = rowsum(dout * out).
  auto forward = [&](ops::Backend& be) {
    auto bqkv = put_half<H>(be, qkv);
    auto bout = put_half<H>(be, std::vector<float>(b * s * out_stride));
    auto blse = put(be, std::vector<float>(b * nq * s));
    const H *q = bqkv.data(), *k = q + nq * hd, *v = k + nkv * hd;
    be.attention_forward(bout.data(), blse.data(), q, k, v, b, s, nq, nkv, hd, stride, out_stride);
    return Outputs{get(bout), get(blse)};
  };
  compare(forward, {R::attn_out, test::kAttnForward}, "attention forward");
  const Outputs saved = forward(cpu());
  compare(
      [&](ops::Backend& be) {
        auto bqkv = put_half<H>(be, qkv), bdout = put_half<H>(be, dout),
             bout = put_half<H>(be, saved[0]);
        auto bdqkv = put_half<H>(be, std::vector<float>(b * s * stride));
        auto blse = put(be, saved[1]);
        const H *q = bqkv.data(), *k = q + nq * hd, *v = k + nkv * hd;
        H *dq = bdqkv.data(), *dk = dq + nq * hd, *dv = dk + nkv * hd;
        be.attention_backward(dq, dk, dv, bdout.data(), bout.data(), blse.data(), q, k, v, b, s, nq,
                              nkv, hd, stride, out_stride);
        return Outputs{get(bdqkv)};
      },
      {R::attn_grad}, "attention backward");
}

TYPED_TEST(CudaHalfBackend, SwigluAndEmbeddingMatchTheCpuBackend) {
  using H = TypeParam;
  using R = BothRounded<H>;
  constexpr int64_t n = 30, f = 120;
  const auto gu = test::randn_half<H>(n * 2 * f, 14, 2.0f), dh = test::randn_half<H>(n * f, 15);
  compare(
      [&](ops::Backend& be) {
        auto bgu = put_half<H>(be, gu), bdh = put_half<H>(be, dh);
        auto bh = put_half<H>(be, std::vector<float>(n * f));
        be.swiglu_forward(bh.data(), bgu.data(), n, f);
        be.swiglu_backward(bgu.data(), bdh.data(), bgu.data(), n, f);  // in place
        return Outputs{get(bh), get(bgu)};
      },
      {R::elementwise, R::elementwise}, "swiglu");
  constexpr int64_t begin = 100, rows = 50, h = 96;
  const std::vector<int32_t> ids = {120, 7, 149, 120, 150, 100, 133, 120, 101};
  const int64_t t = static_cast<int64_t>(ids.size());
  const auto table = test::randn_half<H>(rows * h, 16), dx = test::randn_half<H>(t * h, 17),
             dtable0 = test::randn(rows * h, 18);
  compare_bits(
      [&](ops::Backend& be) {
        auto bids = put(be, ids);
        auto btable = put_half<H>(be, table), bdx = put_half<H>(be, dx);
        auto bx = put_half<H>(be, std::vector<float>(t * h, 1.0f));
        auto bdt = put(be, dtable0);
        be.embedding_forward(bx.data(), bids.data(), btable.data(), t, h, begin, rows);
        be.embedding_backward(bdt.data(), bdx.data(), bids.data(), t, h, begin, rows);
        return Outputs{get(bx), get(bdt)};  // a copy; fp32 sums in token order
      },
      "embedding");
}

TYPED_TEST(CudaHalfBackend, CrossEntropyMatchesTheCpuBackend) {
  using H = TypeParam;
  using R = BothRounded<H>;
  constexpr int64_t n = 12, vocab = 1000, vpad = 1024, cols = vpad / 2;
  constexpr float dscale = 0.25f;
  auto logits = test::randn_half<H>(n * vpad, 19, 3.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = vocab; j < vpad; ++j) logits[i * vpad + j] = 60.0f;  // padding
  std::vector<int32_t> targets(n);
  for (int64_t i = 0; i < n; ++i) targets[i] = static_cast<int32_t>((i * 337) % vocab);
  compare(
      [&](ops::Backend& be) {
        auto bl = put_half<H>(be, logits);
        auto bt = put(be, targets);
        auto bloss = put(be, std::vector<float>(n)), bloss2 = put(be, std::vector<float>(n));
        be.cross_entropy_forward(bloss.data(), bl.data(), bt.data(), n, vpad, vocab);
        be.cross_entropy_forward_backward(bloss2.data(), bl.data(), bl.data(), bt.data(), n, vpad,
                                          vocab, dscale);  // in place
        return Outputs{get(bloss), get(bloss2), get(bl)};
      },
      {test::kFp32Reduction, test::kFp32Reduction, R::reduction}, "cross entropy");
  // The vocab-parallel passes over two column slices, reduced on the host between them.
  compare(
      [&](ops::Backend& be) {
        auto bt = put(be, targets);
        std::vector<Buffer<H>> slice;
        for (int r = 0; r < 2; ++r) {
          std::vector<float> part(n * cols);
          for (int64_t i = 0; i < n; ++i)
            std::copy_n(logits.begin() + i * vpad + r * cols, cols, part.begin() + i * cols);
          slice.push_back(put_half<H>(be, part));
        }
        auto bmax = put(be, std::vector<float>(n)), btl = put(be, std::vector<float>(n));
        auto bsum = put(be, std::vector<double>(n));
        auto bloss = put(be, std::vector<float>(n));
        std::vector<float> mx(n, -INFINITY), tl(n, 0.0f);
        for (int r = 0; r < 2; ++r) {
          be.cross_entropy_local_max(bmax.data(), btl.data(), slice[r].data(), bt.data(), n, cols,
                                     r * cols, vocab);
          const auto m = bmax.to_host(), t = btl.to_host();
          for (int64_t i = 0; i < n; ++i) mx[i] = std::max(mx[i], m[i]), tl[i] += t[i];
        }
        bmax.upload(mx.data(), n);
        btl.upload(tl.data(), n);
        std::vector<double> se(n, 0.0);
        for (int r = 0; r < 2; ++r) {
          be.cross_entropy_local_sum_exp(bsum.data(), slice[r].data(), bmax.data(), n, cols,
                                         r * cols, vocab);
          const auto part = bsum.to_host();
          for (int64_t i = 0; i < n; ++i) se[i] += part[i];
        }
        bsum.upload(se.data(), n);
        Outputs out{mx, tl, std::vector<float>(se.begin(), se.end())};
        for (int r = 0; r < 2; ++r) {
          be.cross_entropy_finish(bloss.data(), slice[r].data(), slice[r].data(), bmax.data(),
                                  bsum.data(), btl.data(), bt.data(), n, cols, r * cols, vocab,
                                  dscale);
          out.push_back(get(slice[r]));
        }
        out.push_back(get(bloss));
        return out;
      },
      {Tol{0, 0}, Tol{0, 0}, test::kFp32Reduction, R::reduction, R::reduction,
       test::kFp32Reduction},
      "vocab-parallel cross entropy");
}

TYPED_TEST(CudaHalfBackend, AddConversionsAndAdamwMatchTheCpuBackend) {
  using H = TypeParam;
  using R = BothRounded<H>;
  constexpr int64_t n = 5000;
  const auto y = test::randn_half<H>(n, 20), x = test::randn_half<H>(n, 21, 0.01f),
             wide = test::randn(n, 22, 100.0f);
  compare_bits(
      [&](ops::Backend& be) {
        auto by = put_half<H>(be, y), bx = put_half<H>(be, x),
             b16 = put_half<H>(be, std::vector<float>(n));
        auto bw = put(be, wide), back = put(be, std::vector<float>(n));
        be.add_inplace(by.data(), bx.data(), n);  // one fp32 add of exact values, rounded once
        be.to_half(b16.data(), bw.data(), n);
        be.to_fp32(back.data(), b16.data(), n);
        return Outputs{get(by), get(b16), get(back)};
      },
      "add and conversions");
  const auto p0 = test::randn(n, 23), g = test::randn(n, 24, 0.1f);
  compare(
      [&](ops::Backend& be) {
        auto bp = put(be, p0), bg = put(be, g), bm = put(be, std::vector<float>(n, 0.0f));
        auto bv = put(be, std::vector<float>(n, 0.0f));
        auto b16 = put_half<H>(be, std::vector<float>(n));
        for (int64_t step = 1; step <= 2; ++step)
          be.adamw_step(bp.data(), b16.data(), bg.data(), bm.data(), bv.data(), n, 1e-2f, 0.9f,
                        0.95f, 1e-8f, 0.1f, step, 0.7f);
        const std::vector<float> p = get(bp), p16 = get(b16);
        // On each device the 16-bit copy is exactly its own master rounded.
        EXPECT_TRUE(test::same_bits(p16, test::rounded<H>(p))) << ops::device_name(be.device());
        return Outputs{p, get(bm), get(bv), p16};
      },
      {test::kFp32Elementwise, test::kFp32Elementwise, test::kFp32Elementwise,
       R::of(test::kFp32Elementwise)},
      "mixed AdamW");
}

// The skip test of dynamic loss scaling over fp32 gradients, on both devices.
TEST_F(CudaFp32Backend, AnyNonFiniteMatchesTheCpuBackend) {
  constexpr int64_t n = 5000;
  const auto wide = test::randn(n, 22, 100.0f);
  for (ops::Backend* be : {&cpu(), &gpu()}) {
    auto bb = put(*be, wide);
    EXPECT_FALSE(be->any_non_finite(bb.data(), n)) << ops::device_name(be->device());
    for (float v : {INFINITY, NAN}) {
      std::vector<float> one = wide;
      one[n - 1] = v;
      bb.upload(one.data(), n);
      EXPECT_TRUE(be->any_non_finite(bb.data(), n)) << ops::device_name(be->device()) << " " << v;
    }
  }
}

// fp16 overflows beyond 65504 to inf (the dynamic loss scaler's signal, train/loss_scaler.h) and
// no kernel clamps it, on either device: a GEMM's output and its activation gradient, the residual
// add and the conversion of the master weights are inf where the value is out of range; the fp32
// weight gradient of the same GEMM stays finite, and the inf activation gradient, passed on to
// the layer before, makes that layer's fp32 weight gradient inf: what any_non_finite reports.
TEST_F(CudaFp16Backend, OverflowIsInfOnBothDevicesAsTheLossScalerExpects) {
  constexpr int64_t m = 4, k = 64, n = 8;
  // y = x w^T with x, w of 32: 64 * 32 * 32 = 65536, inf; x's row 0 of 1 gives 2048. dx = dy w
  // with dy of 60000: 8 * 60000 * 32, inf. dw = dy^T x: 60000 * (1 + 3 * 32), finite in fp32.
  std::vector<float> x(m * k, 32.0f), w(n * k, 32.0f), dy(m * n, 60000.0f), x0(m * k, 1.0f);
  for (int64_t j = 0; j < k; ++j) x[j] = 1.0f;
  const std::vector<float> big(1000, 60000.0f), more(1000, 10000.0f);
  std::vector<float> master = test::randn(1000, 25);
  master[10] = 65519.0f, master[11] = 65520.0f, master[12] = -1e6f;  // 65504, inf, -inf
  const auto run = [&](ops::Backend& be) {
    auto bx = put_half<fp16>(be, x), bw = put_half<fp16>(be, w), bdy = put_half<fp16>(be, dy);
    auto by = put_half<fp16>(be, std::vector<float>(m * n));
    auto bdx = put_half<fp16>(be, std::vector<float>(m * k));
    auto bdw = put(be, std::vector<float>(n * k));
    be.linear_forward(by.data(), bx.data(), bw.data(), m, k, n);
    be.linear_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), m, k, n, false);
    // The layer before: [m, k] -> [m, k] on x0, its dy the inf dx.
    auto bx0 = put_half<fp16>(be, x0);
    auto bdw0 = put(be, std::vector<float>(k * k));
    be.linear_backward(nullptr, bdw0.data(), bdx.data(), bx0.data(), bx0.data(), m, k, k, false);
    EXPECT_FALSE(be.any_non_finite(bdw.data(), n * k)) << ops::device_name(be.device());
    EXPECT_TRUE(be.any_non_finite(bdw0.data(), k * k)) << ops::device_name(be.device());
    auto bsum = put_half<fp16>(be, big), bmore = put_half<fp16>(be, more);
    be.add_inplace(bsum.data(), bmore.data(), 1000);
    auto bmaster = put(be, master);
    auto bhalf = put_half<fp16>(be, std::vector<float>(1000));
    be.to_half(bhalf.data(), bmaster.data(), 1000);
    return Outputs{get(by), get(bdx), get(bdw), get(bdw0), get(bsum), get(bhalf)};
  };
  const Outputs want = run(cpu()), got = run(gpu());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(test::same_bits(got[i], want[i])) << "output " << i;
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(want[0][0], 2048.0f);
  EXPECT_EQ(want[0][n], inf);
  EXPECT_EQ(want[1][0], inf);
  EXPECT_EQ(want[2][0], 60000.0f * 97);
  EXPECT_EQ(want[3][0], inf);
  EXPECT_EQ(want[4][0], inf);  // 60000 + 10000
  EXPECT_EQ(want[5][10], 65504.0f);
  EXPECT_EQ(want[5][11], inf);
  EXPECT_EQ(want[5][12], -inf);
}

}  // namespace
}  // namespace mds
