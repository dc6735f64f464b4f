// The bf16 half of the CPU backend (ops/cpu/half_reference.h) against the fp32 kernels: every
// bf16 kernel, run through ops::Backend on bf16 inputs, must give bit for bit the fp32 kernel's
// result on the same values (as fp32, exact) rounded once to bf16, and its fp32 outputs (rstd,
// lse, losses, statistics, dw, dtable) bit for bit the fp32 kernel's. That is the contract the
// CUDA bf16 kernels are held to (tests/cuda/cuda_bf16_backend_test.cpp). Covered too: "+="
// accumulation from nonzero prior contents, the aliasing the kernels allow, strided views that
// leave the elements between their rows alone, the conversions, the mixed-precision AdamW and
// the non-finite check. Every test runs on the plain CPU backend and on the guarded one
// (tests/guarded_backend.h), which proves the bf16 methods touch their buffers only inside the
// backend's own calls, as device memory requires.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "guarded_backend.h"
#include "mds/core/bf16.h"
#include "mds/core/buffer.h"
#include "mds/ops/backend.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

// ---- Host helpers --------------------------------------------------------------------------

// n samples of N(0, scale^2) rounded to bf16, as fp32 (exact bf16 values).
std::vector<float> rnd(size_t n, uint32_t seed, float scale = 1.0f) {
  std::vector<float> x = test::randn(n, seed, scale);
  for (float& v : x) v = round_to_bf16(v);
  return x;
}

std::vector<bf16> bf16s(const std::vector<float>& x) {
  return {x.begin(), x.end()};  // explicit bf16(float): rounds to nearest even
}

std::vector<float> floats(const std::vector<bf16>& x) {
  return {x.begin(), x.end()};
}

// got[i] is fp32[i] rounded once to bf16, bit for bit.
::testing::AssertionResult rounds_to(const std::vector<bf16>& got, const std::vector<float>& fp32) {
  if (got.size() != fp32.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << fp32.size();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != bf16(fp32[i]) && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " elements are not the rounded fp32 result; first at "
         << first << ": got " << static_cast<float>(got[first]) << ", fp32 " << fp32[first]
         << " rounds to " << round_to_bf16(fp32[first]);
}

::testing::AssertionResult same_bits(const std::vector<float>& got,
                                     const std::vector<float>& want) {
  if (test::same_bits(got, want)) return ::testing::AssertionSuccess();
  auto fail = ::testing::AssertionFailure();
  if (got.size() != want.size()) return fail << "size " << got.size() << " vs " << want.size();
  for (size_t i = 0; i < got.size(); ++i)
    if (std::bit_cast<uint32_t>(got[i]) != std::bit_cast<uint32_t>(want[i]))
      return fail << "first difference at " << i << ": " << got[i] << " vs " << want[i];
  return fail;
}

// ---- The fixture: one backend per parameter ------------------------------------------------

enum class Memory { plain, guarded };

std::ostream& operator<<(std::ostream& os, Memory m) {
  return os << (m == Memory::plain ? "cpu backend" : "guarded cpu backend");
}
std::string memory_name(const ::testing::TestParamInfo<Memory>& info) {
  return info.param == Memory::plain ? "Cpu" : "Guarded";
}

class Bf16Backend : public ::testing::TestWithParam<Memory> {
 protected:
  test::GuardedBackend guarded_;
  ops::Backend& be() {
    return GetParam() == Memory::guarded ? static_cast<ops::Backend&>(guarded_)
                                         : ops::cpu_backend();
  }
  template <typename T>
  Buffer<T> put(const std::vector<T>& host) {
    Buffer<T> b(be(), static_cast<int64_t>(host.size()));
    b.upload(host.data(), b.size());
    return b;
  }
  Buffer<bf16> put_bf16(const std::vector<float>& host) { return put(bf16s(host)); }
};

INSTANTIATE_TEST_SUITE_P(, Bf16Backend, ::testing::Values(Memory::plain, Memory::guarded),
                         memory_name);

// ---- GEMM ----------------------------------------------------------------------------------

constexpr int64_t kM = 7, kK = 33, kN = 13;

TEST_P(Bf16Backend, LinearForwardIsTheRoundedFp32Gemm) {
  const auto x = rnd(kM * kK, 1), w = rnd(kN * kK, 2);
  std::vector<float> y(kM * kN);
  ops::linear_forward(y.data(), x.data(), w.data(), kM, kK, kN);
  auto bx = put_bf16(x), bw = put_bf16(w), by = put_bf16(std::vector<float>(kM * kN, 3.0f));
  be().linear_forward(by.data(), bx.data(), bw.data(), kM, kK, kN);
  EXPECT_TRUE(rounds_to(by.to_host(), y));
}

TEST_P(Bf16Backend, LinearBackwardAccumulatesDwInFp32AndRoundsDxOnce) {
  const auto x = rnd(kM * kK, 3), w = rnd(kN * kK, 4), dy = rnd(kM * kN, 5);
  const auto dx0 = rnd(kM * kK, 6), dw0 = test::randn(kN * kK, 7);  // nonzero priors
  for (bool accumulate : {true, false}) {
    std::vector<float> dx = dx0, dw = dw0;
    ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), kM, kK, kN,
                         accumulate);
    auto bx = put_bf16(x), bw = put_bf16(w), bdy = put_bf16(dy), bdx = put_bf16(dx0);
    auto bdw = put(dw0);
    be().linear_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), kM, kK, kN,
                         accumulate);
    EXPECT_TRUE(rounds_to(bdx.to_host(), dx)) << "accumulate_dx " << accumulate;
    EXPECT_TRUE(same_bits(bdw.to_host(), dw)) << "accumulate_dx " << accumulate;
  }
}

TEST_P(Bf16Backend, LinearBackwardSkipsANullOutput) {
  const auto x = rnd(kM * kK, 8), w = rnd(kN * kK, 9), dy = rnd(kM * kN, 10);
  const auto dw0 = test::randn(kN * kK, 11);
  std::vector<float> dx(kM * kK), dw = dw0;
  ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), kM, kK, kN, false);
  auto bx = put_bf16(x), bw = put_bf16(w), bdy = put_bf16(dy);
  auto bdx = put_bf16(std::vector<float>(kM * kK, 5.0f));
  auto bdw = put(dw0);
  be().linear_backward(bdx.data(), nullptr, bdy.data(), bx.data(), bw.data(), kM, kK, kN, false);
  EXPECT_TRUE(rounds_to(bdx.to_host(), dx));
  EXPECT_TRUE(same_bits(bdw.to_host(), dw0));
  be().linear_backward(nullptr, bdw.data(), bdy.data(), bx.data(), bw.data(), kM, kK, kN, false);
  EXPECT_TRUE(same_bits(bdw.to_host(), dw));
}

// ---- RMSNorm and RMSNorm + residual ----------------------------------------------------------

constexpr int64_t kRows = 9, kH = 80;
constexpr float kEps = 1e-5f;

TEST_P(Bf16Backend, RmsnormForwardRoundsYOnceAndKeepsRstdFp32) {
  const auto x = rnd(kRows * kH, 12), w = rnd(kH, 13);
  std::vector<float> y(kRows * kH), rstd(kRows);
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kRows, kH, kEps);
  auto bx = put_bf16(x), bw = put_bf16(w), by = put_bf16(std::vector<float>(kRows * kH));
  Buffer<float> brstd(be(), kRows);
  be().rmsnorm_forward(by.data(), brstd.data(), bx.data(), bw.data(), kRows, kH, kEps);
  EXPECT_TRUE(rounds_to(by.to_host(), y));
  EXPECT_TRUE(same_bits(brstd.to_host(), rstd));
}

TEST_P(Bf16Backend, RmsnormBackwardAddsIntoDxAndDwFromNonzeroPriors) {
  const auto x = rnd(kRows * kH, 14), w = rnd(kH, 15), dy = rnd(kRows * kH, 16);
  const auto dx0 = rnd(kRows * kH, 17), dw0 = test::randn(kH, 18);
  std::vector<float> y(kRows * kH), rstd(kRows), dx = dx0, dw = dw0;
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kRows, kH, kEps);
  ops::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), kRows,
                        kH);
  auto bx = put_bf16(x), bw = put_bf16(w), bdy = put_bf16(dy), bdx = put_bf16(dx0);
  auto bdw = put(dw0), brstd = put(rstd);
  be().rmsnorm_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), brstd.data(),
                        kRows, kH);
  EXPECT_TRUE(rounds_to(bdx.to_host(), dx));  // prior + term in fp32, rounded once
  EXPECT_TRUE(same_bits(bdw.to_host(), dw));
}

TEST_P(Bf16Backend, RmsnormResidualForwardNormalisesTheRoundedSum) {
  const auto x = rnd(kRows * kH, 19), r = rnd(kRows * kH, 20), w = rnd(kH, 21);
  std::vector<float> sum(kRows * kH), y(kRows * kH), rstd(kRows);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = round_to_bf16(x[i] + r[i]);
  ops::rmsnorm_forward(y.data(), rstd.data(), sum.data(), w.data(), kRows, kH, kEps);
  // resid_out a buffer of its own, then aliasing x (the residual stream updated in place).
  for (bool in_place : {false, true}) {
    auto bx = put_bf16(x), br = put_bf16(r), bw = put_bf16(w);
    auto by = put_bf16(std::vector<float>(kRows * kH)),
         bs = put_bf16(std::vector<float>(kRows * kH));
    Buffer<float> brstd(be(), kRows);
    bf16* resid_out = in_place ? bx.data() : bs.data();
    be().rmsnorm_residual_forward(by.data(), resid_out, brstd.data(), bx.data(), br.data(),
                                  bw.data(), kRows, kH, kEps);
    EXPECT_TRUE(rounds_to((in_place ? bx : bs).to_host(), sum)) << "in place " << in_place;
    EXPECT_TRUE(rounds_to(by.to_host(), y)) << "in place " << in_place;
    EXPECT_TRUE(same_bits(brstd.to_host(), rstd)) << "in place " << in_place;
  }
}

TEST_P(Bf16Backend, RmsnormResidualBackwardAddsTheResidualGradient) {
  const auto s = rnd(kRows * kH, 22), w = rnd(kH, 23), dy = rnd(kRows * kH, 24);
  const auto dresid = rnd(kRows * kH, 25), dw0 = test::randn(kH, 26);
  std::vector<float> y(kRows * kH), rstd(kRows);
  ops::rmsnorm_forward(y.data(), rstd.data(), s.data(), w.data(), kRows, kH, kEps);
  auto bs = put_bf16(s), bw = put_bf16(w), bdy = put_bf16(dy);
  auto brstd = put(rstd);
  // dresid given (dsum a buffer of its own, then aliasing dresid), and dresid null.
  for (int mode = 0; mode < 3; ++mode) {
    std::vector<float> dsum = mode < 2 ? dresid : std::vector<float>(kRows * kH), dw = dw0;
    ops::rmsnorm_backward(dsum.data(), dw.data(), dy.data(), s.data(), w.data(), rstd.data(), kRows,
                          kH);
    auto bdr = put_bf16(dresid), bdsum = put_bf16(std::vector<float>(kRows * kH, 7.0f));
    auto bdw = put(dw0);
    bf16* out = mode == 1 ? bdr.data() : bdsum.data();
    be().rmsnorm_residual_backward(out, bdw.data(), bdy.data(), mode == 2 ? nullptr : bdr.data(),
                                   bs.data(), bw.data(), brstd.data(), kRows, kH);
    EXPECT_TRUE(rounds_to((mode == 1 ? bdr : bdsum).to_host(), dsum)) << "mode " << mode;
    EXPECT_TRUE(same_bits(bdw.to_host(), dw)) << "mode " << mode;
  }
}

TEST_P(Bf16Backend, Fp32RmsnormResidualIsTheAddThenTheNorm) {
  const auto x = test::randn(kRows * kH, 27), r = test::randn(kRows * kH, 28);
  const auto w = test::randn(kH, 29), dy = test::randn(kRows * kH, 30);
  const auto dresid = test::randn(kRows * kH, 31);
  std::vector<float> sum(kRows * kH), y(kRows * kH), rstd(kRows), dsum = dresid, dw(kH);
  ops::add(sum.data(), x.data(), r.data(), kRows * kH);
  ops::rmsnorm_forward(y.data(), rstd.data(), sum.data(), w.data(), kRows, kH, kEps);
  ops::rmsnorm_backward(dsum.data(), dw.data(), dy.data(), sum.data(), w.data(), rstd.data(), kRows,
                        kH);
  auto bx = put(x), br = put(r), bw = put(w), bdy = put(dy), bdr = put(dresid);
  Buffer<float> by(be(), kRows * kH), brstd(be(), kRows), bdw(be(), kH);
  bdw.zero();
  be().rmsnorm_residual_forward(by.data(), bx.data(), brstd.data(), bx.data(), br.data(), bw.data(),
                                kRows, kH, kEps);  // resid_out aliases x
  be().rmsnorm_residual_backward(bdr.data(), bdw.data(), bdy.data(), bdr.data(), bx.data(),
                                 bw.data(), brstd.data(), kRows, kH);  // dsum aliases dresid
  EXPECT_TRUE(same_bits(bx.to_host(), sum));
  EXPECT_TRUE(same_bits(by.to_host(), y));
  EXPECT_TRUE(same_bits(brstd.to_host(), rstd));
  EXPECT_TRUE(same_bits(bdr.to_host(), dsum));
  EXPECT_TRUE(same_bits(bdw.to_host(), dw));
}

// ---- RoPE and attention on strided views -------------------------------------------------------

// b = 2 sequences of s = 37 tokens (more than one 32- or 64-token tile), 4 query heads of 16 over
// 2 kv heads, inside a fused qkv buffer with 8 padding elements per row: q, k, v and the gaps.
constexpr int64_t kB = 2, kS = 37, kNq = 4, kNkv = 2, kHd = 16;
constexpr int64_t kQkvStride = (kNq + 2 * kNkv) * kHd + 8, kOutStride = kNq * kHd + 5;
constexpr int64_t kTokens = kB * kS;

TEST_P(Bf16Backend, RopeRotatesTheViewOnlyAndRoundsOnce) {
  std::vector<float> cos(64 * kHd / 2), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), 64, kHd, 10000.0);
  const auto buf = rnd(kTokens * kQkvStride, 32);
  auto bcos = put(cos), bsin = put(sin);
  for (bool forward : {true, false}) {
    // Rotate the k heads of the qkv rows (an offset view), from position 3.
    const int64_t offset = kNq * kHd;
    std::vector<float> want = buf;
    auto bx = put_bf16(buf);
    if (forward) {
      ops::rope_forward(want.data() + offset, cos.data(), sin.data(), kB, kS, kNkv, kHd, kQkvStride,
                        3);
      be().rope_forward(bx.data() + offset, bcos.data(), bsin.data(), kB, kS, kNkv, kHd, kQkvStride,
                        3);
    } else {
      ops::rope_backward(want.data() + offset, cos.data(), sin.data(), kB, kS, kNkv, kHd,
                         kQkvStride, 3);
      be().rope_backward(bx.data() + offset, bcos.data(), bsin.data(), kB, kS, kNkv, kHd,
                         kQkvStride, 3);
    }
    EXPECT_TRUE(rounds_to(bx.to_host(), want)) << "forward " << forward;  // gaps: unchanged
  }
}

TEST_P(Bf16Backend, AttentionOnAFusedQkvBufferIsTheRoundedFp32Attention) {
  const auto qkv = rnd(kTokens * kQkvStride, 33), out0 = rnd(kTokens * kOutStride, 34);
  const auto dout = rnd(kTokens * kOutStride, 35), dqkv0 = rnd(kTokens * kQkvStride, 36);
  const float *q = qkv.data(), *k = q + kNq * kHd, *v = k + kNkv * kHd;
  // fp32 on the same values; out starts as out0 so that its gaps are out0's too.
  std::vector<float> out = out0, lse(kB * kNq * kS);
  ops::attention_forward(out.data(), lse.data(), q, k, v, kB, kS, kNq, kNkv, kHd, kQkvStride,
                         kOutStride);
  // The backward reads the bf16 out the forward stored (D = rowsum(dout * out)).
  std::vector<float> out_rounded = out, dqkv = dqkv0;
  for (float& o : out_rounded) o = round_to_bf16(o);
  float *dq = dqkv.data(), *dk = dq + kNq * kHd, *dv = dk + kNkv * kHd;
  ops::attention_backward(dq, dk, dv, dout.data(), out_rounded.data(), lse.data(), q, k, v, kB, kS,
                          kNq, kNkv, kHd, kQkvStride, kOutStride);

  auto bqkv = put_bf16(qkv), bout = put_bf16(out0), bdout = put_bf16(dout);
  auto bdqkv = put_bf16(dqkv0);
  Buffer<float> blse(be(), kB * kNq * kS);
  const bf16 *bq = bqkv.data(), *bk = bq + kNq * kHd, *bv = bk + kNkv * kHd;
  be().attention_forward(bout.data(), blse.data(), bq, bk, bv, kB, kS, kNq, kNkv, kHd, kQkvStride,
                         kOutStride);
  EXPECT_TRUE(rounds_to(bout.to_host(), out));
  EXPECT_TRUE(same_bits(blse.to_host(), lse));
  bf16 *bdq = bdqkv.data(), *bdk = bdq + kNq * kHd, *bdv = bdk + kNkv * kHd;
  be().attention_backward(bdq, bdk, bdv, bdout.data(), bout.data(), blse.data(), bq, bk, bv, kB, kS,
                          kNq, kNkv, kHd, kQkvStride, kOutStride);
  EXPECT_TRUE(rounds_to(bdqkv.to_host(), dqkv));  // the gaps of dqkv: untouched
}

// ---- SwiGLU and the embedding ------------------------------------------------------------------

constexpr int64_t kF = 24;

TEST_P(Bf16Backend, SwigluForwardAndInPlaceBackward) {
  const auto gu = rnd(kRows * 2 * kF, 37, 2.0f), dh = rnd(kRows * kF, 38);
  std::vector<float> h(kRows * kF), dgu(kRows * 2 * kF);
  ops::swiglu_forward(h.data(), gu.data(), kRows, kF);
  ops::swiglu_backward(dgu.data(), dh.data(), gu.data(), kRows, kF);
  auto bgu = put_bf16(gu), bdh = put_bf16(dh), bh = put_bf16(std::vector<float>(kRows * kF));
  be().swiglu_forward(bh.data(), bgu.data(), kRows, kF);
  EXPECT_TRUE(rounds_to(bh.to_host(), h));
  be().swiglu_backward(bgu.data(), bdh.data(), bgu.data(), kRows, kF);  // dgu aliases gu
  EXPECT_TRUE(rounds_to(bgu.to_host(), dgu));
}

TEST_P(Bf16Backend, EmbeddingCopiesRowsAndAddsIntoAnFp32Table) {
  // This rank holds vocabulary rows [10, 30); ids outside give zero rows and no gradient.
  constexpr int64_t kBegin = 10, kTableRows = 20, kHid = 40;
  const std::vector<int32_t> ids = {12, 3, 29, 12, 30, 10, 25, 12};
  const int64_t n = static_cast<int64_t>(ids.size());
  const auto table = rnd(kTableRows * kHid, 39), dx = rnd(n * kHid, 40);
  const auto dtable0 = test::randn(kTableRows * kHid, 41);
  std::vector<float> x(n * kHid), dtable = dtable0;
  ops::embedding_forward(x.data(), ids.data(), table.data(), n, kHid, kBegin, kTableRows);
  ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, kHid, kBegin, kTableRows);
  auto bids = put(ids);
  auto btable = put_bf16(table), bdx = put_bf16(dx);
  auto bdt = put(dtable0);
  auto bx = put_bf16(std::vector<float>(n * kHid, 1.0f));
  be().embedding_forward(bx.data(), bids.data(), btable.data(), n, kHid, kBegin, kTableRows);
  be().embedding_backward(bdt.data(), bdx.data(), bids.data(), n, kHid, kBegin, kTableRows);
  EXPECT_TRUE(rounds_to(bx.to_host(), x));
  EXPECT_EQ(floats(bx.to_host()), x);  // a copy: no rounding at all
  EXPECT_TRUE(same_bits(bdt.to_host(), dtable));
}

// ---- Cross entropy -----------------------------------------------------------------------------

constexpr int64_t kCeRows = 6, kVocab = 45, kVpad = 48;
constexpr float kDscale = 0.37f;
const std::vector<int32_t> kTargets = {0, 44, 5, 5, 23, 31};

std::vector<float> logits_with_padding(uint32_t seed) {
  auto x = rnd(kCeRows * kVpad, seed, 3.0f);
  for (int64_t i = 0; i < kCeRows; ++i)  // padding that would dominate if it took part
    for (int64_t j = kVocab; j < kVpad; ++j) x[i * kVpad + j] = 50.0f;
  return x;
}

TEST_P(Bf16Backend, CrossEntropyOverBf16LogitsInPlaceAndLossOnly) {
  const auto logits = logits_with_padding(42);
  std::vector<float> losses(kCeRows), dlogits(logits.size()), losses_only(kCeRows);
  ops::cross_entropy_forward_backward(losses.data(), dlogits.data(), logits.data(), kTargets.data(),
                                      kCeRows, kVpad, kVocab, kDscale);
  ops::cross_entropy_forward(losses_only.data(), logits.data(), kTargets.data(), kCeRows, kVpad,
                             kVocab);
  auto bt = put(kTargets);
  auto bl = put_bf16(logits);
  Buffer<float> bloss(be(), kCeRows);
  be().cross_entropy_forward(bloss.data(), bl.data(), bt.data(), kCeRows, kVpad, kVocab);
  EXPECT_TRUE(same_bits(bloss.to_host(), losses_only));
  be().cross_entropy_forward_backward(bloss.data(), nullptr, bl.data(), bt.data(), kCeRows, kVpad,
                                      kVocab, kDscale);  // no dlogits: the forward
  EXPECT_TRUE(same_bits(bloss.to_host(), losses_only));
  be().cross_entropy_forward_backward(bloss.data(), bl.data(), bl.data(), bt.data(), kCeRows, kVpad,
                                      kVocab, kDscale);  // dlogits aliases logits
  EXPECT_TRUE(same_bits(bloss.to_host(), losses));
  EXPECT_TRUE(rounds_to(bl.to_host(), dlogits));
}

// Megatron's vocab-parallel passes over two column slices [0, 24) and [24, 48) (the second
// holding the padding), the reductions between them done on the host: the fp32 passes (which
// keep the exponentials in dlogits) against the bf16 ones (which recompute them in the finish).
TEST_P(Bf16Backend, CrossEntropyVocabParallelPassesRecomputeTheExponentials) {
  constexpr int64_t kCols = kVpad / 2;
  const auto logits = logits_with_padding(43);
  std::vector<std::vector<float>> slice(2, std::vector<float>(kCeRows * kCols));
  for (int r = 0; r < 2; ++r)
    for (int64_t i = 0; i < kCeRows; ++i)
      for (int64_t j = 0; j < kCols; ++j)
        slice[r][i * kCols + j] = logits[i * kVpad + r * kCols + j];

  // fp32 reference.
  std::vector<float> mx(kCeRows, -INFINITY), tl(kCeRows, 0.0f), m1(kCeRows), t1(kCeRows);
  for (int r = 0; r < 2; ++r) {
    ops::cross_entropy_local_max(m1.data(), t1.data(), slice[r].data(), kTargets.data(), kCeRows,
                                 kCols, r * kCols, kVocab);
    for (int64_t i = 0; i < kCeRows; ++i) mx[i] = std::max(mx[i], m1[i]), tl[i] += t1[i];
  }
  // The sums as the pass that keeps no exponentials; the exponentials as the pass that does.
  std::vector<double> se(kCeRows, 0.0), s1(kCeRows);
  std::vector<std::vector<float>> grad = slice;
  for (int r = 0; r < 2; ++r) {
    ops::cross_entropy_local_sum_exp(s1.data(), nullptr, slice[r].data(), mx.data(), kCeRows, kCols,
                                     r * kCols, kVocab);
    for (int64_t i = 0; i < kCeRows; ++i) se[i] += s1[i];
    ops::cross_entropy_local_sum_exp(s1.data(), grad[r].data(), slice[r].data(), mx.data(), kCeRows,
                                     kCols, r * kCols, kVocab);
  }
  std::vector<float> losses(kCeRows);
  for (int r = 0; r < 2; ++r)
    ops::cross_entropy_finish(losses.data(), grad[r].data(), mx.data(), se.data(), tl.data(),
                              kTargets.data(), kCeRows, kCols, r * kCols, kDscale);

  // bf16 passes through the backend.
  auto bt = put(kTargets);
  std::vector<Buffer<bf16>> bl;
  for (int r = 0; r < 2; ++r) bl.push_back(put_bf16(slice[r]));
  Buffer<float> bm(be(), kCeRows), btl(be(), kCeRows), bloss(be(), kCeRows);
  Buffer<double> bse(be(), kCeRows);
  std::vector<float> gmx(kCeRows, -INFINITY), gtl(kCeRows, 0.0f);
  for (int r = 0; r < 2; ++r) {
    be().cross_entropy_local_max(bm.data(), btl.data(), bl[r].data(), bt.data(), kCeRows, kCols,
                                 r * kCols, kVocab);
    const auto m = bm.to_host(), t = btl.to_host();
    for (int64_t i = 0; i < kCeRows; ++i) gmx[i] = std::max(gmx[i], m[i]), gtl[i] += t[i];
  }
  EXPECT_TRUE(same_bits(gmx, mx));
  EXPECT_TRUE(same_bits(gtl, tl));
  bm.upload(gmx.data(), kCeRows);
  btl.upload(gtl.data(), kCeRows);
  std::vector<double> gse(kCeRows, 0.0);
  for (int r = 0; r < 2; ++r) {
    be().cross_entropy_local_sum_exp(bse.data(), bl[r].data(), bm.data(), kCeRows, kCols, r * kCols,
                                     kVocab);
    const auto s = bse.to_host();
    for (int64_t i = 0; i < kCeRows; ++i) gse[i] += s[i];
  }
  EXPECT_EQ(gse, se);
  bse.upload(gse.data(), kCeRows);
  for (int r = 0; r < 2; ++r) {
    be().cross_entropy_finish(bloss.data(), nullptr, bl[r].data(), bm.data(), bse.data(),
                              btl.data(), bt.data(), kCeRows, kCols, r * kCols, kVocab, kDscale);
    EXPECT_TRUE(same_bits(bloss.to_host(), losses));
    be().cross_entropy_finish(bloss.data(), bl[r].data(), bl[r].data(), bm.data(), bse.data(),
                              btl.data(), bt.data(), kCeRows, kCols, r * kCols, kVocab,
                              kDscale);  // dlogits aliases logits
    EXPECT_TRUE(same_bits(bloss.to_host(), losses));
    EXPECT_TRUE(rounds_to(bl[r].to_host(), grad[r])) << "slice " << r;
  }
}

// ---- Add, conversions, AdamW, the non-finite check -------------------------------------------

TEST_P(Bf16Backend, AddInplaceRoundsTheFp32SumOnce) {
  const auto y0 = rnd(1000, 44), x = rnd(1000, 45, 0.01f);  // small x: most sums need rounding
  std::vector<float> y = y0;
  ops::add_inplace(y.data(), x.data(), 1000);
  auto by = put_bf16(y0), bx = put_bf16(x);
  be().add_inplace(by.data(), bx.data(), 1000);
  EXPECT_TRUE(rounds_to(by.to_host(), y));
}

TEST_P(Bf16Backend, ConversionsRoundOnceAndRoundTrip) {
  // fp32 -> bf16 rounds to nearest even (the host bits), bf16 -> fp32 is exact.
  std::vector<float> x = test::randn(4096, 46, 100.0f);
  x.insert(x.end(), {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, 3.4e38f});
  Buffer<float> bx = put(x), back(be(), bx.size());
  Buffer<bf16> b(be(), bx.size());
  be().to_half(b.data(), bx.data(), bx.size());
  EXPECT_TRUE(rounds_to(b.to_host(), x));
  be().to_fp32(back.data(), b.data(), b.size());
  std::vector<float> want = x;
  for (float& v : want) v = round_to_bf16(v);
  EXPECT_TRUE(same_bits(back.to_host(), want));
  // Every bf16 bit pattern survives bf16 -> fp32 -> bf16, NaNs as the canonical NaN.
  std::vector<bf16> all(1 << 16);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = bf16::from_bits(static_cast<uint16_t>(i));
  Buffer<bf16> ball = put(all), again(be(), ball.size());
  Buffer<float> wide(be(), ball.size());
  be().to_fp32(wide.data(), ball.data(), ball.size());
  be().to_half(again.data(), wide.data(), wide.size());
  const std::vector<bf16> got = again.to_host();
  for (uint32_t i = 0; i < all.size(); ++i) {
    const bool nan = std::isnan(static_cast<float>(all[i]));
    ASSERT_EQ(got[i].bits, nan ? 0x7fff : i) << std::hex << "bits 0x" << i;
  }
}

TEST_P(Bf16Backend, MixedAdamwUpdatesTheFp32MasterAndWritesItsRounding) {
  constexpr int64_t n = 777;
  const auto p0 = test::randn(n, 47), g = test::randn(n, 48, 0.1f);
  const auto m0 = test::randn(n, 49, 0.01f);
  std::vector<float> v0 = test::randn(n, 50, 0.01f);
  for (float& x : v0) x = x * x;
  std::vector<float> p = p0, m = m0, v = v0;
  for (int64_t step = 1; step <= 3; ++step)
    ops::adamw_step(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f,
                    step, 0.5f);
  auto bp = put(p0), bg = put(g), bm = put(m0), bv = put(v0);
  auto bp16 = put_bf16(std::vector<float>(n, 9.0f));
  for (int64_t step = 1; step <= 3; ++step)
    be().adamw_step(bp.data(), bp16.data(), bg.data(), bm.data(), bv.data(), n, 1e-2f, 0.9f, 0.95f,
                    1e-8f, 0.1f, step, 0.5f);
  EXPECT_TRUE(same_bits(bp.to_host(), p));
  EXPECT_TRUE(same_bits(bm.to_host(), m));
  EXPECT_TRUE(same_bits(bv.to_host(), v));
  EXPECT_TRUE(rounds_to(bp16.to_host(), p));
}

TEST_P(Bf16Backend, AnyNonFiniteFindsInfAndNanAnywhere) {
  constexpr int64_t n = 10007;                       // not a multiple of any vector width
  std::vector<float> x = test::randn(n, 51, 1e30f);  // large but finite
  x[17] = std::numeric_limits<float>::max();
  x[18] = std::numeric_limits<float>::denorm_min();
  Buffer<float> bx = put(x);
  EXPECT_FALSE(be().any_non_finite(bx.data(), n));
  EXPECT_FALSE(be().any_non_finite(bx.data(), 0));
  const float bad[] = {INFINITY, -INFINITY, NAN, -NAN};
  for (int64_t at : {int64_t{0}, int64_t{1}, n / 2, n - 2, n - 1}) {
    for (float b : bad) {
      std::vector<float> y = x;
      y[static_cast<size_t>(at)] = b;
      bx.upload(y.data(), n);
      EXPECT_TRUE(be().any_non_finite(bx.data(), n)) << b << " at " << at;
      EXPECT_EQ(be().any_non_finite(bx.data(), at), false) << b << " at " << at << ", n = " << at;
    }
  }
}

}  // namespace
}  // namespace mds
