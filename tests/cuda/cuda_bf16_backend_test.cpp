// The bf16 half of the CUDA backend (ops/backend.h on ops/cuda's bf16 kernels) against the bf16
// half of the CPU backend (the reference, ops/cpu/bf16_reference.h), method by method, on the
// same bf16 inputs through Buffer<bf16>: what the bf16 model will call on either device. The
// kernels themselves are tested against the fp32 CPU kernels in cuda_bf16_*_test.cpp; this
// proves the backend hands each one its arguments in the right order and types (mds::bf16 as
// __nv_bfloat16).
//
// Tolerances: both sides round an fp32 result of the same inputs, a and c with |a - c| within
// the fp32 tolerance of the kernel (cuda_test_util.h). Then
//   |bf16(a) - bf16(c)| <= u|a| + |a - c| + u|c|,
// and measured against |bf16(c)| (>= (1 - u)|c|) that is within three applications of
// after_bf16_roundings: one rounding per side and one more that covers the (1 + u) factors.
// fp32 outputs keep the fp32 tolerance; copies, conversions, same-order fp32 sums and the add of
// two bf16 values (one exact fp32 operation) must match bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "cuda_test_util.h"
#include "mds/core/bf16.h"
#include "mds/core/buffer.h"
#include "mds/ops/backend.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::after_bf16_roundings;
using test::close_to_cpu;
using test::Tol;

constexpr Tol both_rounded(Tol fp32) {
  return after_bf16_roundings(fp32, 3);
}
constexpr Tol kElementwise = both_rounded(test::kFp32Elementwise);
constexpr Tol kReduction = both_rounded(test::kFp32Reduction);
constexpr Tol kGemm = both_rounded(test::kBf16GemmFp32Sums);
constexpr Tol kAttnOut = both_rounded(test::kAttnForward);
constexpr Tol kAttnGrad = both_rounded(test::kAttnBackward);

ops::Backend& cpu() {
  return ops::cpu_backend();
}
ops::Backend& gpu() {
  return ops::backend_for(ops::Device::cuda);
}

std::vector<float> rnd(size_t n, uint32_t seed, float scale = 1.0f) {
  return test::rounded_to_bf16(test::randn(n, seed, scale));
}

template <typename T>
Buffer<T> put(ops::Backend& be, const std::vector<T>& host) {
  Buffer<T> b(be, static_cast<int64_t>(host.size()));
  b.upload(host.data(), b.size());
  return b;
}
Buffer<bf16> put_bf16(ops::Backend& be, const std::vector<float>& host) {
  return put(be, std::vector<bf16>(host.begin(), host.end()));
}
std::vector<float> get(const Buffer<bf16>& b) {
  const std::vector<bf16> h = b.to_host();
  return {h.begin(), h.end()};
}
std::vector<float> get(const Buffer<float>& b) {
  return b.to_host();
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

class CudaBf16Backend : public test::CudaTest {};

TEST_F(CudaBf16Backend, LinearMatchesTheCpuBackend) {
  constexpr int64_t m = 40, k = 96, n = 72;
  const auto x = rnd(m * k, 1), w = rnd(n * k, 2), dy = rnd(m * n, 3), dx0 = rnd(m * k, 4);
  const auto dw0 = test::randn(n * k, 5);
  compare(
      [&](ops::Backend& be) {
        auto bx = put_bf16(be, x), bw = put_bf16(be, w), bdy = put_bf16(be, dy);
        auto by = put_bf16(be, std::vector<float>(m * n)), bdx = put_bf16(be, dx0);
        auto bdw = put(be, dw0);
        be.linear_forward(by.data(), bx.data(), bw.data(), m, k, n);
        be.linear_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), m, k, n, true);
        return Outputs{get(by), get(bdx), get(bdw)};
      },
      {kGemm, kGemm, test::kBf16GemmFp32Sums}, "linear");
}

TEST_F(CudaBf16Backend, RmsnormAndTheFusedResidualFormMatchTheCpuBackend) {
  constexpr int64_t n = 33, h = 200;
  constexpr float eps = 1e-5f;
  const auto x = rnd(n * h, 6), r = rnd(n * h, 7), w = rnd(h, 8), dy = rnd(n * h, 9);
  const auto dx0 = rnd(n * h, 10), dw0 = test::randn(h, 11);
  compare(
      [&](ops::Backend& be) {
        auto bx = put_bf16(be, x), bw = put_bf16(be, w), bdy = put_bf16(be, dy);
        auto by = put_bf16(be, std::vector<float>(n * h)), bdx = put_bf16(be, dx0);
        auto brstd = put(be, std::vector<float>(n)), bdw = put(be, dw0);
        be.rmsnorm_forward(by.data(), brstd.data(), bx.data(), bw.data(), n, h, eps);
        be.rmsnorm_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), brstd.data(),
                            n, h);
        return Outputs{get(by), get(brstd), get(bdx), get(bdw)};
      },
      {kElementwise, test::kFp32Reduction, kReduction, test::kFp32Reduction}, "rmsnorm");
  compare(
      [&](ops::Backend& be) {
        auto bx = put_bf16(be, x), br = put_bf16(be, r), bw = put_bf16(be, w);
        auto bdy = put_bf16(be, dy), bdr = put_bf16(be, dx0);
        auto by = put_bf16(be, std::vector<float>(n * h));
        auto brstd = put(be, std::vector<float>(n)), bdw = put(be, dw0);
        // resid_out aliases x; dsum aliases dresid (the residual stream updated in place).
        be.rmsnorm_residual_forward(by.data(), bx.data(), brstd.data(), bx.data(), br.data(),
                                    bw.data(), n, h, eps);
        be.rmsnorm_residual_backward(bdr.data(), bdw.data(), bdy.data(), bdr.data(), bx.data(),
                                     bw.data(), brstd.data(), n, h);
        return Outputs{get(bx), get(by), get(brstd), get(bdr), get(bdw)};
      },
      {kElementwise, kElementwise, test::kFp32Reduction, kReduction, test::kFp32Reduction},
      "rmsnorm + residual");
  // The fp32 fused form, the same calls on fp32 buffers.
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
TEST_F(CudaBf16Backend, RopeAndAttentionOnAFusedQkvBufferMatchTheCpuBackend) {
  constexpr int64_t b = 2, s = 70, nq = 4, nkv = 2, hd = 64;
  constexpr int64_t stride = (nq + 2 * nkv) * hd + 8, out_stride = nq * hd + 4;
  std::vector<float> cos(128 * hd / 2), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), 128, hd, 10000.0);
  const auto qkv = rnd(b * s * stride, 12), dout = rnd(b * s * out_stride, 13);
  compare(
      [&](ops::Backend& be) {
        auto bf = put_bf16(be, qkv), bb = put_bf16(be, qkv);
        auto bcos = put(be, cos), bsin = put(be, sin);
        be.rope_forward(bf.data(), bcos.data(), bsin.data(), b, s, nq, hd, stride, 5);
        be.rope_backward(bb.data(), bcos.data(), bsin.data(), b, s, nq, hd, stride, 5);
        return Outputs{get(bf), get(bb)};
      },
      {kElementwise, kElementwise}, "rope");
  // The forward; then the backward of both devices from the same out and lse (the CPU's), so
  // that a one-ulp difference of the stored bf16 out does not enter D = rowsum(dout * out).
  auto forward = [&](ops::Backend& be) {
    auto bqkv = put_bf16(be, qkv);
    auto bout = put_bf16(be, std::vector<float>(b * s * out_stride));
    auto blse = put(be, std::vector<float>(b * nq * s));
    const bf16 *q = bqkv.data(), *k = q + nq * hd, *v = k + nkv * hd;
    be.attention_forward(bout.data(), blse.data(), q, k, v, b, s, nq, nkv, hd, stride, out_stride);
    return Outputs{get(bout), get(blse)};
  };
  compare(forward, {kAttnOut, test::kAttnForward}, "attention forward");
  const Outputs saved = forward(cpu());
  compare(
      [&](ops::Backend& be) {
        auto bqkv = put_bf16(be, qkv), bdout = put_bf16(be, dout), bout = put_bf16(be, saved[0]);
        auto bdqkv = put_bf16(be, std::vector<float>(b * s * stride));
        auto blse = put(be, saved[1]);
        const bf16 *q = bqkv.data(), *k = q + nq * hd, *v = k + nkv * hd;
        bf16 *dq = bdqkv.data(), *dk = dq + nq * hd, *dv = dk + nkv * hd;
        be.attention_backward(dq, dk, dv, bdout.data(), bout.data(), blse.data(), q, k, v, b, s, nq,
                              nkv, hd, stride, out_stride);
        return Outputs{get(bdqkv)};
      },
      {kAttnGrad}, "attention backward");
}

TEST_F(CudaBf16Backend, SwigluAndEmbeddingMatchTheCpuBackend) {
  constexpr int64_t n = 30, f = 120;
  const auto gu = rnd(n * 2 * f, 14, 2.0f), dh = rnd(n * f, 15);
  compare(
      [&](ops::Backend& be) {
        auto bgu = put_bf16(be, gu), bdh = put_bf16(be, dh);
        auto bh = put_bf16(be, std::vector<float>(n * f));
        be.swiglu_forward(bh.data(), bgu.data(), n, f);
        be.swiglu_backward(bgu.data(), bdh.data(), bgu.data(), n, f);  // in place
        return Outputs{get(bh), get(bgu)};
      },
      {kElementwise, kElementwise}, "swiglu");
  constexpr int64_t begin = 100, rows = 50, h = 96;
  const std::vector<int32_t> ids = {120, 7, 149, 120, 150, 100, 133, 120, 101};
  const int64_t t = static_cast<int64_t>(ids.size());
  const auto table = rnd(rows * h, 16), dx = rnd(t * h, 17), dtable0 = test::randn(rows * h, 18);
  compare_bits(
      [&](ops::Backend& be) {
        auto bids = put(be, ids);
        auto btable = put_bf16(be, table), bdx = put_bf16(be, dx);
        auto bx = put_bf16(be, std::vector<float>(t * h, 1.0f));
        auto bdt = put(be, dtable0);
        be.embedding_forward(bx.data(), bids.data(), btable.data(), t, h, begin, rows);
        be.embedding_backward(bdt.data(), bdx.data(), bids.data(), t, h, begin, rows);
        return Outputs{get(bx), get(bdt)};  // a copy; fp32 sums in token order
      },
      "embedding");
}

TEST_F(CudaBf16Backend, CrossEntropyMatchesTheCpuBackend) {
  constexpr int64_t n = 12, vocab = 1000, vpad = 1024, cols = vpad / 2;
  constexpr float dscale = 0.25f;
  auto logits = rnd(n * vpad, 19, 3.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = vocab; j < vpad; ++j) logits[i * vpad + j] = 60.0f;  // padding
  std::vector<int32_t> targets(n);
  for (int64_t i = 0; i < n; ++i) targets[i] = static_cast<int32_t>((i * 337) % vocab);
  compare(
      [&](ops::Backend& be) {
        auto bl = put_bf16(be, logits);
        auto bt = put(be, targets);
        auto bloss = put(be, std::vector<float>(n)), bloss2 = put(be, std::vector<float>(n));
        be.cross_entropy_forward(bloss.data(), bl.data(), bt.data(), n, vpad, vocab);
        be.cross_entropy_forward_backward(bloss2.data(), bl.data(), bl.data(), bt.data(), n, vpad,
                                          vocab, dscale);  // in place
        return Outputs{get(bloss), get(bloss2), get(bl)};
      },
      {test::kFp32Reduction, test::kFp32Reduction, kReduction}, "cross entropy");
  // The vocab-parallel passes over two column slices, reduced on the host between them.
  compare(
      [&](ops::Backend& be) {
        auto bt = put(be, targets);
        std::vector<Buffer<bf16>> slice;
        for (int r = 0; r < 2; ++r) {
          std::vector<float> part(n * cols);
          for (int64_t i = 0; i < n; ++i)
            std::copy_n(logits.begin() + i * vpad + r * cols, cols, part.begin() + i * cols);
          slice.push_back(put_bf16(be, part));
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
      {Tol{0, 0}, Tol{0, 0}, test::kFp32Reduction, kReduction, kReduction, test::kFp32Reduction},
      "vocab-parallel cross entropy");
}

TEST_F(CudaBf16Backend, AddConversionsNonFiniteAndAdamwMatchTheCpuBackend) {
  constexpr int64_t n = 5000;
  const auto y = rnd(n, 20), x = rnd(n, 21, 0.01f), wide = test::randn(n, 22, 100.0f);
  compare_bits(
      [&](ops::Backend& be) {
        auto by = put_bf16(be, y), bx = put_bf16(be, x), b16 = put_bf16(be, std::vector<float>(n));
        auto bw = put(be, wide), back = put(be, std::vector<float>(n));
        be.add_inplace(by.data(), bx.data(), n);  // one fp32 add of exact values, rounded once
        be.to_bf16(b16.data(), bw.data(), n);
        be.to_fp32(back.data(), b16.data(), n);
        return Outputs{get(by), get(b16), get(back)};
      },
      "add and conversions");
  std::vector<float> bad = wide;
  for (ops::Backend* be : {&cpu(), &gpu()}) {
    auto bb = put(*be, bad);
    EXPECT_FALSE(be->any_non_finite(bb.data(), n)) << ops::device_name(be->device());
    for (float v : {INFINITY, NAN}) {
      std::vector<float> one = wide;
      one[n - 1] = v;
      bb.upload(one.data(), n);
      EXPECT_TRUE(be->any_non_finite(bb.data(), n)) << ops::device_name(be->device()) << " " << v;
    }
  }
  const auto p0 = test::randn(n, 23), g = test::randn(n, 24, 0.1f);
  std::vector<float> p_cpu, p16_gpu, p_gpu;
  compare(
      [&](ops::Backend& be) {
        auto bp = put(be, p0), bg = put(be, g), bm = put(be, std::vector<float>(n, 0.0f));
        auto bv = put(be, std::vector<float>(n, 0.0f));
        auto b16 = put_bf16(be, std::vector<float>(n));
        for (int64_t step = 1; step <= 2; ++step)
          be.adamw_step(bp.data(), b16.data(), bg.data(), bm.data(), bv.data(), n, 1e-2f, 0.9f,
                        0.95f, 1e-8f, 0.1f, step, 0.7f);
        const std::vector<float> p = get(bp), p16 = get(b16);
        // On each device the bf16 copy is exactly its own master rounded.
        EXPECT_TRUE(test::same_bits(p16, test::rounded_to_bf16(p)))
            << ops::device_name(be.device());
        return Outputs{p, get(bm), get(bv), p16};
      },
      {test::kFp32Elementwise, test::kFp32Elementwise, test::kFp32Elementwise,
       both_rounded(test::kFp32Elementwise)},
      "mixed AdamW");
}

}  // namespace
}  // namespace mds
