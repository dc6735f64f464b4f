// The 16-bit half of the CPU backend (ops/cpu/half_reference.h) against the fp32 kernels, for
// H = bf16 and fp16: every H kernel, run through ops::Backend on H inputs, must give bit for bit
// the fp32 kernel's result on the same values (as fp32, exact) rounded once to H, and its fp32
// outputs (rstd, lse, losses, statistics, dw, dtable) bit for bit the fp32 kernel's. That is the
// contract the CUDA 16-bit kernels are held to (tests/cuda/cuda_bf16_backend_test.cpp). Covered
// too: "+=" accumulation from nonzero prior contents, the aliasing the kernels allow, strided
// views that leave the elements between their rows alone, the conversions, the mixed-precision
// AdamW, outputs past H's largest finite value becoming inf (fp16's 65504: the loss scaler's
// overflow signal), and the fp32 kernels the 16-bit path leans on (the fused residual norm, the
// non-finite check). Every test runs on the plain CPU backend and on the guarded one
// (tests/guarded_backend.h), which proves the methods touch their buffers only inside the
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
#include "half_test_util.h"
#include "mds/core/bf16.h"
#include "mds/core/buffer.h"
#include "mds/core/fp16.h"
#include "mds/ops/backend.h"
#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

// ---- Host helpers --------------------------------------------------------------------------

using test::largest_finite;
using test::randn_half;
using test::round_to;

template <typename H>
std::vector<H> halves(const std::vector<float>& x) {
  return {x.begin(), x.end()};  // explicit H(float): rounds to nearest even
}

template <typename H>
std::vector<float> floats(const std::vector<H>& x) {
  return {x.begin(), x.end()};
}

// got[i] is fp32[i] rounded once to H, bit for bit.
template <typename H>
::testing::AssertionResult rounds_to(const std::vector<H>& got, const std::vector<float>& fp32) {
  if (got.size() != fp32.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " vs " << fp32.size();
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != H(fp32[i]) && bad++ == 0) first = i;
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << got.size() << " elements are not the rounded fp32 result; first at "
         << first << ": got " << static_cast<float>(got[first]) << ", fp32 " << fp32[first]
         << " rounds to " << round_to<H>(fp32[first]) << " in " << storage_name<H>();
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

// ---- The fixtures: one backend per case --------------------------------------------------------

enum class Memory { plain, guarded };

const char* memory_name(Memory m) {
  return m == Memory::plain ? "Cpu" : "Guarded";
}
std::ostream& operator<<(std::ostream& os, Memory m) {
  return os << memory_name(m);
}

// The backend a test runs on: the CPU backend, or the guarded one.
class BackendTest : public ::testing::Test {
 protected:
  Memory memory_ = Memory::plain;
  test::GuardedBackend guarded_;
  ops::Backend& be() {
    return memory_ == Memory::guarded ? static_cast<ops::Backend&>(guarded_) : ops::cpu_backend();
  }
  template <typename T>
  Buffer<T> put(const std::vector<T>& host) {
    Buffer<T> b(be(), static_cast<int64_t>(host.size()));
    b.upload(host.data(), b.size());
    return b;
  }
};

// The 16-bit kernels: every case is a storage type H on one of the two backends.
template <typename Half, Memory M>
struct On {
  using H = Half;
  static constexpr Memory memory = M;
};
using HalfCases = ::testing::Types<On<bf16, Memory::plain>, On<bf16, Memory::guarded>,
                                   On<fp16, Memory::plain>, On<fp16, Memory::guarded>>;
struct HalfCaseName {
  template <typename C>
  static std::string GetName(int i) {
    return test::HalfTypeName::GetName<typename C::H>(i) + memory_name(C::memory);
  }
};

template <typename C>
class HalfBackend : public BackendTest {
 protected:
  HalfBackend() { memory_ = C::memory; }
  Buffer<typename C::H> put_half(const std::vector<float>& host) {
    return put(halves<typename C::H>(host));
  }
};
TYPED_TEST_SUITE(HalfBackend, HalfCases, HalfCaseName);

// The fp32 kernels the 16-bit path relies on, on both backends.
class Fp32Backend : public BackendTest, public ::testing::WithParamInterface<Memory> {
 protected:
  Fp32Backend() { memory_ = GetParam(); }
};
std::string param_name(const ::testing::TestParamInfo<Memory>& info) {
  return memory_name(info.param);
}
INSTANTIATE_TEST_SUITE_P(, Fp32Backend, ::testing::Values(Memory::plain, Memory::guarded),
                         param_name);

// ---- GEMM ----------------------------------------------------------------------------------

constexpr int64_t kM = 7, kK = 33, kN = 13;

TYPED_TEST(HalfBackend, LinearForwardIsTheRoundedFp32Gemm) {
  using H = typename TypeParam::H;
  const auto x = randn_half<H>(kM * kK, 1), w = randn_half<H>(kN * kK, 2);
  std::vector<float> y(kM * kN);
  ops::linear_forward(y.data(), x.data(), w.data(), kM, kK, kN);
  auto bx = this->put_half(x), bw = this->put_half(w),
       by = this->put_half(std::vector<float>(kM * kN, 3.0f));
  this->be().linear_forward(by.data(), bx.data(), bw.data(), kM, kK, kN);
  EXPECT_TRUE(rounds_to(by.to_host(), y));
}

TYPED_TEST(HalfBackend, LinearBackwardAccumulatesDwInFp32AndRoundsDxOnce) {
  using H = typename TypeParam::H;
  const auto x = randn_half<H>(kM * kK, 3), w = randn_half<H>(kN * kK, 4),
             dy = randn_half<H>(kM * kN, 5);
  const auto dx0 = randn_half<H>(kM * kK, 6), dw0 = test::randn(kN * kK, 7);  // nonzero priors
  for (bool accumulate : {true, false}) {
    std::vector<float> dx = dx0, dw = dw0;
    ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), kM, kK, kN,
                         accumulate);
    auto bx = this->put_half(x), bw = this->put_half(w), bdy = this->put_half(dy),
         bdx = this->put_half(dx0);
    auto bdw = this->put(dw0);
    this->be().linear_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(), kM, kK, kN,
                               accumulate);
    EXPECT_TRUE(rounds_to(bdx.to_host(), dx)) << "accumulate_dx " << accumulate;
    EXPECT_TRUE(same_bits(bdw.to_host(), dw)) << "accumulate_dx " << accumulate;
  }
}

TYPED_TEST(HalfBackend, LinearBackwardSkipsANullOutput) {
  using H = typename TypeParam::H;
  const auto x = randn_half<H>(kM * kK, 8), w = randn_half<H>(kN * kK, 9),
             dy = randn_half<H>(kM * kN, 10);
  const auto dw0 = test::randn(kN * kK, 11);
  std::vector<float> dx(kM * kK), dw = dw0;
  ops::linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), kM, kK, kN, false);
  auto bx = this->put_half(x), bw = this->put_half(w), bdy = this->put_half(dy);
  auto bdx = this->put_half(std::vector<float>(kM * kK, 5.0f));
  auto bdw = this->put(dw0);
  this->be().linear_backward(bdx.data(), nullptr, bdy.data(), bx.data(), bw.data(), kM, kK, kN,
                             false);
  EXPECT_TRUE(rounds_to(bdx.to_host(), dx));
  EXPECT_TRUE(same_bits(bdw.to_host(), dw0));
  this->be().linear_backward(nullptr, bdw.data(), bdy.data(), bx.data(), bw.data(), kM, kK, kN,
                             false);
  EXPECT_TRUE(same_bits(bdw.to_host(), dw));
}

// ---- RMSNorm and RMSNorm + residual ----------------------------------------------------------

constexpr int64_t kRows = 9, kH = 80;
constexpr float kEps = 1e-5f;

TYPED_TEST(HalfBackend, RmsnormForwardRoundsYOnceAndKeepsRstdFp32) {
  using H = typename TypeParam::H;
  const auto x = randn_half<H>(kRows * kH, 12), w = randn_half<H>(kH, 13);
  std::vector<float> y(kRows * kH), rstd(kRows);
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kRows, kH, kEps);
  auto bx = this->put_half(x), bw = this->put_half(w),
       by = this->put_half(std::vector<float>(kRows * kH));
  Buffer<float> brstd(this->be(), kRows);
  this->be().rmsnorm_forward(by.data(), brstd.data(), bx.data(), bw.data(), kRows, kH, kEps);
  EXPECT_TRUE(rounds_to(by.to_host(), y));
  EXPECT_TRUE(same_bits(brstd.to_host(), rstd));
}

TYPED_TEST(HalfBackend, RmsnormBackwardAddsIntoDxAndDwFromNonzeroPriors) {
  using H = typename TypeParam::H;
  const auto x = randn_half<H>(kRows * kH, 14), w = randn_half<H>(kH, 15),
             dy = randn_half<H>(kRows * kH, 16);
  const auto dx0 = randn_half<H>(kRows * kH, 17), dw0 = test::randn(kH, 18);
  std::vector<float> y(kRows * kH), rstd(kRows), dx = dx0, dw = dw0;
  ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), kRows, kH, kEps);
  ops::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), kRows,
                        kH);
  auto bx = this->put_half(x), bw = this->put_half(w), bdy = this->put_half(dy),
       bdx = this->put_half(dx0);
  auto bdw = this->put(dw0), brstd = this->put(rstd);
  this->be().rmsnorm_backward(bdx.data(), bdw.data(), bdy.data(), bx.data(), bw.data(),
                              brstd.data(), kRows, kH);
  EXPECT_TRUE(rounds_to(bdx.to_host(), dx));  // prior + term in fp32, rounded once
  EXPECT_TRUE(same_bits(bdw.to_host(), dw));
}

TYPED_TEST(HalfBackend, RmsnormResidualForwardNormalisesTheRoundedSum) {
  using H = typename TypeParam::H;
  const auto x = randn_half<H>(kRows * kH, 19), r = randn_half<H>(kRows * kH, 20),
             w = randn_half<H>(kH, 21);
  std::vector<float> sum(kRows * kH), y(kRows * kH), rstd(kRows);
  for (size_t i = 0; i < sum.size(); ++i) sum[i] = round_to<H>(x[i] + r[i]);
  ops::rmsnorm_forward(y.data(), rstd.data(), sum.data(), w.data(), kRows, kH, kEps);
  // resid_out a buffer of its own, then aliasing x (the residual stream updated in place).
  for (bool in_place : {false, true}) {
    auto bx = this->put_half(x), br = this->put_half(r), bw = this->put_half(w);
    auto by = this->put_half(std::vector<float>(kRows * kH)),
         bs = this->put_half(std::vector<float>(kRows * kH));
    Buffer<float> brstd(this->be(), kRows);
    H* resid_out = in_place ? bx.data() : bs.data();
    this->be().rmsnorm_residual_forward(by.data(), resid_out, brstd.data(), bx.data(), br.data(),
                                        bw.data(), kRows, kH, kEps);
    EXPECT_TRUE(rounds_to((in_place ? bx : bs).to_host(), sum)) << "in place " << in_place;
    EXPECT_TRUE(rounds_to(by.to_host(), y)) << "in place " << in_place;
    EXPECT_TRUE(same_bits(brstd.to_host(), rstd)) << "in place " << in_place;
  }
}

TYPED_TEST(HalfBackend, RmsnormResidualBackwardAddsTheResidualGradient) {
  using H = typename TypeParam::H;
  const auto s = randn_half<H>(kRows * kH, 22), w = randn_half<H>(kH, 23),
             dy = randn_half<H>(kRows * kH, 24);
  const auto dresid = randn_half<H>(kRows * kH, 25), dw0 = test::randn(kH, 26);
  std::vector<float> y(kRows * kH), rstd(kRows);
  ops::rmsnorm_forward(y.data(), rstd.data(), s.data(), w.data(), kRows, kH, kEps);
  auto bs = this->put_half(s), bw = this->put_half(w), bdy = this->put_half(dy);
  auto brstd = this->put(rstd);
  // dresid given (dsum a buffer of its own, then aliasing dresid), and dresid null.
  for (int mode = 0; mode < 3; ++mode) {
    std::vector<float> dsum = mode < 2 ? dresid : std::vector<float>(kRows * kH), dw = dw0;
    ops::rmsnorm_backward(dsum.data(), dw.data(), dy.data(), s.data(), w.data(), rstd.data(), kRows,
                          kH);
    auto bdr = this->put_half(dresid), bdsum = this->put_half(std::vector<float>(kRows * kH, 7.0f));
    auto bdw = this->put(dw0);
    H* out = mode == 1 ? bdr.data() : bdsum.data();
    this->be().rmsnorm_residual_backward(out, bdw.data(), bdy.data(),
                                         mode == 2 ? nullptr : bdr.data(), bs.data(), bw.data(),
                                         brstd.data(), kRows, kH);
    EXPECT_TRUE(rounds_to((mode == 1 ? bdr : bdsum).to_host(), dsum)) << "mode " << mode;
    EXPECT_TRUE(same_bits(bdw.to_host(), dw)) << "mode " << mode;
  }
}

TEST_P(Fp32Backend, RmsnormResidualIsTheAddThenTheNorm) {
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

TYPED_TEST(HalfBackend, RopeRotatesTheViewOnlyAndRoundsOnce) {
  using H = typename TypeParam::H;
  std::vector<float> cos(64 * kHd / 2), sin(cos.size());
  ops::rope_tables(cos.data(), sin.data(), 64, kHd, 10000.0);
  const auto buf = randn_half<H>(kTokens * kQkvStride, 32);
  auto bcos = this->put(cos), bsin = this->put(sin);
  for (bool forward : {true, false}) {
    // Rotate the k heads of the qkv rows (an offset view), from position 3.
    const int64_t offset = kNq * kHd;
    std::vector<float> want = buf;
    auto bx = this->put_half(buf);
    if (forward) {
      ops::rope_forward(want.data() + offset, cos.data(), sin.data(), kB, kS, kNkv, kHd, kQkvStride,
                        3);
      this->be().rope_forward(bx.data() + offset, bcos.data(), bsin.data(), kB, kS, kNkv, kHd,
                              kQkvStride, 3);
    } else {
      ops::rope_backward(want.data() + offset, cos.data(), sin.data(), kB, kS, kNkv, kHd,
                         kQkvStride, 3);
      this->be().rope_backward(bx.data() + offset, bcos.data(), bsin.data(), kB, kS, kNkv, kHd,
                               kQkvStride, 3);
    }
    EXPECT_TRUE(rounds_to(bx.to_host(), want)) << "forward " << forward;  // gaps: unchanged
  }
}

TYPED_TEST(HalfBackend, AttentionOnAFusedQkvBufferIsTheRoundedFp32Attention) {
  using H = typename TypeParam::H;
  const auto qkv = randn_half<H>(kTokens * kQkvStride, 33),
             out0 = randn_half<H>(kTokens * kOutStride, 34);
  const auto dout = randn_half<H>(kTokens * kOutStride, 35),
             dqkv0 = randn_half<H>(kTokens * kQkvStride, 36);
  const float *q = qkv.data(), *k = q + kNq * kHd, *v = k + kNkv * kHd;
  // fp32 on the same values; out starts as out0 so that its gaps are out0's too.
  std::vector<float> out = out0, lse(kB * kNq * kS);
  ops::attention_forward(out.data(), lse.data(), q, k, v, kB, kS, kNq, kNkv, kHd, kQkvStride,
                         kOutStride);
  // The backward reads the H out the forward stored (D = rowsum(dout * out)).
  std::vector<float> out_rounded = out, dqkv = dqkv0;
  for (float& o : out_rounded) o = round_to<H>(o);
  float *dq = dqkv.data(), *dk = dq + kNq * kHd, *dv = dk + kNkv * kHd;
  ops::attention_backward(dq, dk, dv, dout.data(), out_rounded.data(), lse.data(), q, k, v, kB, kS,
                          kNq, kNkv, kHd, kQkvStride, kOutStride);

  auto bqkv = this->put_half(qkv), bout = this->put_half(out0), bdout = this->put_half(dout);
  auto bdqkv = this->put_half(dqkv0);
  Buffer<float> blse(this->be(), kB * kNq * kS);
  const H *bq = bqkv.data(), *bk = bq + kNq * kHd, *bv = bk + kNkv * kHd;
  this->be().attention_forward(bout.data(), blse.data(), bq, bk, bv, kB, kS, kNq, kNkv, kHd,
                               kQkvStride, kOutStride);
  EXPECT_TRUE(rounds_to(bout.to_host(), out));
  EXPECT_TRUE(same_bits(blse.to_host(), lse));
  H *bdq = bdqkv.data(), *bdk = bdq + kNq * kHd, *bdv = bdk + kNkv * kHd;
  this->be().attention_backward(bdq, bdk, bdv, bdout.data(), bout.data(), blse.data(), bq, bk, bv,
                                kB, kS, kNq, kNkv, kHd, kQkvStride, kOutStride);
  EXPECT_TRUE(rounds_to(bdqkv.to_host(), dqkv));  // the gaps of dqkv: untouched
}

// ---- SwiGLU and the embedding ------------------------------------------------------------------

constexpr int64_t kF = 24;

TYPED_TEST(HalfBackend, SwigluForwardAndInPlaceBackward) {
  using H = typename TypeParam::H;
  const auto gu = randn_half<H>(kRows * 2 * kF, 37, 2.0f), dh = randn_half<H>(kRows * kF, 38);
  std::vector<float> h(kRows * kF), dgu(kRows * 2 * kF);
  ops::swiglu_forward(h.data(), gu.data(), kRows, kF);
  ops::swiglu_backward(dgu.data(), dh.data(), gu.data(), kRows, kF);
  auto bgu = this->put_half(gu), bdh = this->put_half(dh),
       bh = this->put_half(std::vector<float>(kRows * kF));
  this->be().swiglu_forward(bh.data(), bgu.data(), kRows, kF);
  EXPECT_TRUE(rounds_to(bh.to_host(), h));
  this->be().swiglu_backward(bgu.data(), bdh.data(), bgu.data(), kRows, kF);  // dgu aliases gu
  EXPECT_TRUE(rounds_to(bgu.to_host(), dgu));
}

TYPED_TEST(HalfBackend, EmbeddingCopiesRowsAndAddsIntoAnFp32Table) {
  using H = typename TypeParam::H;
  // This rank holds vocabulary rows [10, 30); ids outside give zero rows and no gradient.
  constexpr int64_t kBegin = 10, kTableRows = 20, kHid = 40;
  const std::vector<int32_t> ids = {12, 3, 29, 12, 30, 10, 25, 12};
  const int64_t n = static_cast<int64_t>(ids.size());
  const auto table = randn_half<H>(kTableRows * kHid, 39), dx = randn_half<H>(n * kHid, 40);
  const auto dtable0 = test::randn(kTableRows * kHid, 41);
  std::vector<float> x(n * kHid), dtable = dtable0;
  ops::embedding_forward(x.data(), ids.data(), table.data(), n, kHid, kBegin, kTableRows);
  ops::embedding_backward(dtable.data(), dx.data(), ids.data(), n, kHid, kBegin, kTableRows);
  auto bids = this->put(ids);
  auto btable = this->put_half(table), bdx = this->put_half(dx);
  auto bdt = this->put(dtable0);
  auto bx = this->put_half(std::vector<float>(n * kHid, 1.0f));
  this->be().embedding_forward(bx.data(), bids.data(), btable.data(), n, kHid, kBegin, kTableRows);
  this->be().embedding_backward(bdt.data(), bdx.data(), bids.data(), n, kHid, kBegin, kTableRows);
  EXPECT_TRUE(rounds_to(bx.to_host(), x));
  EXPECT_EQ(floats(bx.to_host()), x);  // a copy: no rounding at all
  EXPECT_TRUE(same_bits(bdt.to_host(), dtable));
}

// ---- Cross entropy -----------------------------------------------------------------------------

constexpr int64_t kCeRows = 6, kVocab = 45, kVpad = 48;
constexpr float kDscale = 0.37f;
const std::vector<int32_t> kTargets = {0, 44, 5, 5, 23, 31};

template <typename H>
std::vector<float> logits_with_padding(uint32_t seed) {
  auto x = randn_half<H>(kCeRows * kVpad, seed, 3.0f);
  for (int64_t i = 0; i < kCeRows; ++i)  // padding that would dominate if it took part
    for (int64_t j = kVocab; j < kVpad; ++j) x[i * kVpad + j] = 50.0f;
  return x;
}

TYPED_TEST(HalfBackend, CrossEntropyOverHalfLogitsInPlaceAndLossOnly) {
  using H = typename TypeParam::H;
  const auto logits = logits_with_padding<H>(42);
  std::vector<float> losses(kCeRows), dlogits(logits.size()), losses_only(kCeRows);
  ops::cross_entropy_forward_backward(losses.data(), dlogits.data(), logits.data(), kTargets.data(),
                                      kCeRows, kVpad, kVocab, kDscale);
  ops::cross_entropy_forward(losses_only.data(), logits.data(), kTargets.data(), kCeRows, kVpad,
                             kVocab);
  auto bt = this->put(kTargets);
  auto bl = this->put_half(logits);
  Buffer<float> bloss(this->be(), kCeRows);
  this->be().cross_entropy_forward(bloss.data(), bl.data(), bt.data(), kCeRows, kVpad, kVocab);
  EXPECT_TRUE(same_bits(bloss.to_host(), losses_only));
  this->be().cross_entropy_forward_backward(bloss.data(), nullptr, bl.data(), bt.data(), kCeRows,
                                            kVpad, kVocab, kDscale);  // no dlogits: the forward
  EXPECT_TRUE(same_bits(bloss.to_host(), losses_only));
  this->be().cross_entropy_forward_backward(bloss.data(), bl.data(), bl.data(), bt.data(), kCeRows,
                                            kVpad, kVocab, kDscale);  // dlogits aliases logits
  EXPECT_TRUE(same_bits(bloss.to_host(), losses));
  EXPECT_TRUE(rounds_to(bl.to_host(), dlogits));
}

// Megatron's vocab-parallel passes over two column slices [0, 24) and [24, 48) (the second
// holding the padding), the reductions between them done on the host: the fp32 passes (which
// keep the exponentials in dlogits) against the H ones (which recompute them in the finish).
TYPED_TEST(HalfBackend, CrossEntropyVocabParallelPassesRecomputeTheExponentials) {
  using H = typename TypeParam::H;
  constexpr int64_t kCols = kVpad / 2;
  const auto logits = logits_with_padding<H>(43);
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

  // H passes through the backend.
  auto bt = this->put(kTargets);
  std::vector<Buffer<H>> bl;
  for (int r = 0; r < 2; ++r) bl.push_back(this->put_half(slice[r]));
  Buffer<float> bm(this->be(), kCeRows), btl(this->be(), kCeRows), bloss(this->be(), kCeRows);
  Buffer<double> bse(this->be(), kCeRows);
  std::vector<float> gmx(kCeRows, -INFINITY), gtl(kCeRows, 0.0f);
  for (int r = 0; r < 2; ++r) {
    this->be().cross_entropy_local_max(bm.data(), btl.data(), bl[r].data(), bt.data(), kCeRows,
                                       kCols, r * kCols, kVocab);
    const auto m = bm.to_host(), t = btl.to_host();
    for (int64_t i = 0; i < kCeRows; ++i) gmx[i] = std::max(gmx[i], m[i]), gtl[i] += t[i];
  }
  EXPECT_TRUE(same_bits(gmx, mx));
  EXPECT_TRUE(same_bits(gtl, tl));
  bm.upload(gmx.data(), kCeRows);
  btl.upload(gtl.data(), kCeRows);
  std::vector<double> gse(kCeRows, 0.0);
  for (int r = 0; r < 2; ++r) {
    this->be().cross_entropy_local_sum_exp(bse.data(), bl[r].data(), bm.data(), kCeRows, kCols,
                                           r * kCols, kVocab);
    const auto s = bse.to_host();
    for (int64_t i = 0; i < kCeRows; ++i) gse[i] += s[i];
  }
  EXPECT_EQ(gse, se);
  bse.upload(gse.data(), kCeRows);
  for (int r = 0; r < 2; ++r) {
    this->be().cross_entropy_finish(bloss.data(), nullptr, bl[r].data(), bm.data(), bse.data(),
                                    btl.data(), bt.data(), kCeRows, kCols, r * kCols, kVocab,
                                    kDscale);
    EXPECT_TRUE(same_bits(bloss.to_host(), losses));
    this->be().cross_entropy_finish(bloss.data(), bl[r].data(), bl[r].data(), bm.data(), bse.data(),
                                    btl.data(), bt.data(), kCeRows, kCols, r * kCols, kVocab,
                                    kDscale);  // dlogits aliases logits
    EXPECT_TRUE(same_bits(bloss.to_host(), losses));
    EXPECT_TRUE(rounds_to(bl[r].to_host(), grad[r])) << "slice " << r;
  }
}

// ---- Add, overflow, conversions, AdamW, the non-finite check
// -------------------------------------------

TYPED_TEST(HalfBackend, AddInplaceRoundsTheFp32SumOnce) {
  using H = typename TypeParam::H;
  const auto y0 = randn_half<H>(1000, 44),
             x = randn_half<H>(1000, 45, 0.01f);  // small x: most sums need rounding
  std::vector<float> y = y0;
  ops::add_inplace(y.data(), x.data(), 1000);
  auto by = this->put_half(y0), bx = this->put_half(x);
  this->be().add_inplace(by.data(), bx.data(), 1000);
  EXPECT_TRUE(rounds_to(by.to_host(), y));
}

// Past the largest finite H an output is inf, as the conversion rounds it: the fp16 overflow the
// loss scaler detects (optim/loss_scaler.h). The fp32 result itself may be finite (an fp16 GEMM
// of 131008, bf16's tie max + ulp/2): only the one rounding overflows. The largest value itself,
// and anything rounding down to it, stays finite.
TYPED_TEST(HalfBackend, OutputsPastTheLargestFiniteValueBecomeInf) {
  using H = typename TypeParam::H;
  const float max = largest_finite<H>();
  const float ulp = max - static_cast<float>(H::from_bits(static_cast<uint16_t>(H(max).bits - 1)));
  if constexpr (std::is_same_v<H, fp16>) {
    EXPECT_EQ(max, kFp16Max);
  }
  // add_inplace: y + x pair by pair; the tie max + ulp/2 rounds to even, which is up, to inf.
  const std::vector<float> y0 = {max, -max, max, max, max, -max};
  const std::vector<float> x = {max, -max, -max, ulp / 4, ulp / 2, -ulp / 2};
  const std::vector<float> sums = {INFINITY, -INFINITY, 0.0f, max, INFINITY, -INFINITY};
  std::vector<float> y = y0;
  ops::add_inplace(y.data(), x.data(), int64_t(y.size()));
  EXPECT_TRUE(std::isfinite(y[4]));  // the fp32 sum of the tie
  auto by = this->put_half(y0), bx = this->put_half(x);
  this->be().add_inplace(by.data(), bx.data(), int64_t(y.size()));
  EXPECT_TRUE(rounds_to(by.to_host(), y));
  EXPECT_EQ(floats(by.to_host()), sums);
  // linear_forward: [max/2, max/2] against the rows [1, 1], [2, 2], [-2, -2].
  const std::vector<float> a = {max / 2, max / 2}, w = {1, 1, 2, 2, -2, -2};
  std::vector<float> out(3);
  ops::linear_forward(out.data(), a.data(), w.data(), 1, 2, 3);
  if constexpr (std::is_same_v<H, fp16>) {
    EXPECT_TRUE(std::isfinite(out[1]));  // 131008 in fp32
  }
  auto ba = this->put_half(a), bw = this->put_half(w), bout = this->put_half({0, 0, 0});
  this->be().linear_forward(bout.data(), ba.data(), bw.data(), 1, 2, 3);
  EXPECT_TRUE(rounds_to(bout.to_host(), out));
  EXPECT_EQ(floats(bout.to_host()), (std::vector<float>{max, INFINITY, -INFINITY}));
  // linear_backward: dx = dy w overflows to inf, dw = dy^T x stays the finite fp32 result.
  const std::vector<float> dy = {max / 2, max / 2}, w2 = {2, 2}, one = {1};
  std::vector<float> dx(1), dw(2, 0.0f);
  ops::linear_backward(dx.data(), dw.data(), dy.data(), one.data(), w2.data(), 1, 1, 2, false);
  auto bdy = this->put_half(dy), bw2 = this->put_half(w2), bone = this->put_half(one);
  auto bdx = this->put_half({0}), bdw = this->put(std::vector<float>(2, 0.0f));
  this->be().linear_backward(bdx.data(), bdw.data(), bdy.data(), bone.data(), bw2.data(), 1, 1, 2,
                             false);
  EXPECT_TRUE(rounds_to(bdx.to_host(), dx));
  EXPECT_EQ(floats(bdx.to_host()), std::vector<float>{INFINITY});
  EXPECT_TRUE(same_bits(bdw.to_host(), dw));
  EXPECT_EQ(bdw.to_host(), (std::vector<float>{max / 2, max / 2}));
}

TYPED_TEST(HalfBackend, ConversionsRoundOnceAndRoundTrip) {
  using H = typename TypeParam::H;
  // fp32 -> H rounds to nearest even (the host bits), H -> fp32 is exact.
  std::vector<float> x = test::randn(4096, 46, 100.0f);
  x.insert(x.end(), {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, 3.4e38f});
  Buffer<float> bx = this->put(x), back(this->be(), bx.size());
  Buffer<H> b(this->be(), bx.size());
  this->be().to_half(b.data(), bx.data(), bx.size());
  EXPECT_TRUE(rounds_to(b.to_host(), x));
  this->be().to_fp32(back.data(), b.data(), b.size());
  std::vector<float> want = x;
  for (float& v : want) v = round_to<H>(v);
  EXPECT_TRUE(same_bits(back.to_host(), want));
  // Every H bit pattern survives H -> fp32 -> H, NaNs as the canonical NaN.
  std::vector<H> all(1 << 16);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = H::from_bits(static_cast<uint16_t>(i));
  Buffer<H> ball = this->put(all), again(this->be(), ball.size());
  Buffer<float> wide(this->be(), ball.size());
  this->be().to_fp32(wide.data(), ball.data(), ball.size());
  this->be().to_half(again.data(), wide.data(), wide.size());
  const std::vector<H> got = again.to_host();
  for (uint32_t i = 0; i < all.size(); ++i) {
    const bool nan = std::isnan(static_cast<float>(all[i]));
    ASSERT_EQ(got[i].bits, nan ? 0x7fff : i) << std::hex << "bits 0x" << i;
  }
}

TYPED_TEST(HalfBackend, MixedAdamwUpdatesTheFp32MasterAndWritesItsRounding) {
  constexpr int64_t n = 777;
  const auto p0 = test::randn(n, 47), g = test::randn(n, 48, 0.1f);
  const auto m0 = test::randn(n, 49, 0.01f);
  std::vector<float> v0 = test::randn(n, 50, 0.01f);
  for (float& x : v0) x = x * x;
  std::vector<float> p = p0, m = m0, v = v0;
  for (int64_t step = 1; step <= 3; ++step)
    ops::adamw_step(p.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f,
                    step, 0.5f);
  auto bp = this->put(p0), bg = this->put(g), bm = this->put(m0), bv = this->put(v0);
  auto bph = this->put_half(std::vector<float>(n, 9.0f));
  for (int64_t step = 1; step <= 3; ++step)
    this->be().adamw_step(bp.data(), bph.data(), bg.data(), bm.data(), bv.data(), n, 1e-2f, 0.9f,
                          0.95f, 1e-8f, 0.1f, step, 0.5f);
  EXPECT_TRUE(same_bits(bp.to_host(), p));
  EXPECT_TRUE(same_bits(bm.to_host(), m));
  EXPECT_TRUE(same_bits(bv.to_host(), v));
  EXPECT_TRUE(rounds_to(bph.to_host(), p));
}

TEST_P(Fp32Backend, AnyNonFiniteFindsInfAndNanAnywhere) {
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
