// Host-only (runs without a GPU), for each 16-bit type H of mixed precision: mds's host conversion
// (core/bf16.h, core/fp16.h) gives the bits of CUDA's own __float2bfloat16_rn / __float2half_rn
// and __bfloat162float / __half2float (cuda_bf16.h's and cuda_fp16.h's host paths), over the cut
// points of every 16-bit bucket, overflow, subnormals and NaN included, so the tests'
// host-rounded inputs and expected values are what the device would compute; the unit roundoff
// the tolerances are built on; and the tolerance helper of cuda_test_util.h.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "cuda_test_util.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

namespace mds {
namespace {

// CUDA's conversions of H's device type, on the host.
template <typename H>
uint16_t cuda_bits(float x) {
  if constexpr (std::is_same_v<H, bf16>) {
    const __nv_bfloat16_raw raw = __float2bfloat16_rn(x);
    return raw.x;
  } else {
    const __half_raw raw = __float2half_rn(x);
    return raw.x;
  }
}

template <typename H>
float cuda_float(uint16_t bits) {
  if constexpr (std::is_same_v<H, bf16>) {
    __nv_bfloat16_raw raw;
    raw.x = bits;
    return __bfloat162float(__nv_bfloat16(raw));
  } else {
    __half_raw raw;
    raw.x = bits;
    return __half2float(__half(raw));
  }
}

// The low 16 bits of the fp32 inputs, at and around each type's rounding cut inside them:
//  - bf16 keeps the high 16 bits, so its cut is bit 15: 0, 1, just below / at / just above the
//    half, the top;
//  - fp16 (normal) keeps 10 of the 23 mantissa bits, so its cut is bit 12: every value of the
//    kept bits 13-15 with 0, 1, just below / at / just above the half and the top below them.
//    fp16's subnormals move the cut up to bit 23, into the high half, which the callers
//    enumerate whole (with these lows, 0 among them, so ties are covered there too).
std::vector<uint32_t> low_halves() {
  std::vector<uint32_t> lows = {0x0000, 0x0001, 0x3fff, 0x7fff, 0x8000, 0x8001, 0xc000, 0xffff};
  for (uint32_t kept = 0; kept < 8; ++kept)
    for (uint32_t rest : {0x0000u, 0x0001u, 0x0fffu, 0x1000u, 0x1001u, 0x1fffu})
      lows.push_back(kept << 13 | rest);
  return lows;
}

template <typename H>
class HalfHost : public ::testing::Test {};
TYPED_TEST_SUITE(HalfHost, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(HalfHost, MatchesCudaConversionBitForBit) {
  using H = TypeParam;
  const std::vector<uint32_t> lows = low_halves();
  int64_t checked = 0;
  for (uint32_t hi = 0; hi < 0x10000; ++hi) {  // every sign, exponent and high mantissa
    for (uint32_t lo : lows) {
      const float x = std::bit_cast<float>(hi << 16 | lo);
      ASSERT_EQ(H(x).bits, cuda_bits<H>(x)) << std::hex << "fp32 bits 0x" << (hi << 16 | lo);
      ++checked;
    }
    // And back: every 16-bit pattern, exactly (any NaN for a NaN).
    const auto bits = static_cast<uint16_t>(hi);
    const float cuda = cuda_float<H>(bits), mine = static_cast<float>(H::from_bits(bits));
    ASSERT_TRUE(std::bit_cast<uint32_t>(cuda) == std::bit_cast<uint32_t>(mine) ||
                (std::isnan(cuda) && std::isnan(mine)))
        << std::hex << storage_name<H>() << " bits 0x" << hi;
  }
  EXPECT_EQ(checked, int64_t{0x10000} * static_cast<int64_t>(lows.size()));
}

// Over the normal range the relative error of one rounding is at most u, and reaches it (ties):
// the u of Half<H> that every tolerance is built on.
TYPED_TEST(HalfHost, RelativeErrorIsAtMostTheUnitRoundoff) {
  using H = TypeParam;
  constexpr double u = test::Half<H>::u;
  std::mt19937 gen(7);
  std::uniform_real_distribution<float> mantissa(1.0f, 2.0f);
  std::uniform_int_distribution<int> exponent(-14, 14);  // fp16's normal range, inside bf16's
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const float x = std::ldexp(mantissa(gen), exponent(gen));
    const double r = static_cast<float>(H(x));
    worst = std::max(worst, std::fabs(r - x) / x);
  }
  EXPECT_LE(worst, u);
  EXPECT_GT(worst, 0.9 * u);
}

// fp16's range: the largest finite value, the first value that rounds to inf, and the
// subnormals, the bits that dynamic loss scaling relies on (overflow is inf, never clamped).
TEST(Fp16Host, OverflowIsInfAndSubnormalsRoundToTheirStep) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(static_cast<float>(fp16(65504.0f)), 65504.0f);
  EXPECT_EQ(static_cast<float>(fp16(65519.0f)), 65504.0f);  // below the half-way point to 2^16
  EXPECT_EQ(static_cast<float>(fp16(65520.0f)), inf);       // the tie rounds to even: inf
  EXPECT_EQ(static_cast<float>(fp16(-1e6f)), -inf);
  EXPECT_EQ(static_cast<float>(fp16(std::ldexp(1.0f, -24))), std::ldexp(1.0f, -24));
  EXPECT_EQ(static_cast<float>(fp16(std::ldexp(1.0f, -25))), 0.0f);  // tie to even: 0
  EXPECT_EQ(static_cast<float>(fp16(std::ldexp(1.5f, -25))), std::ldexp(1.0f, -24));
  for (float x : {65504.0f, 65520.0f, 1e6f, std::ldexp(1.0f, -25), std::ldexp(3.0f, -26)})
    EXPECT_EQ(fp16(x).bits, cuda_bits<fp16>(x)) << x;
  // Below the normal range a rounding moves a value by at most eta (half the subnormal step),
  // the absolute term of the tolerances.
  for (int i = 0; i < 1000; ++i) {
    const float x = std::ldexp(static_cast<float>(i) + 0.37f, -27);
    EXPECT_LE(std::fabs(static_cast<double>(static_cast<float>(fp16(x))) - x),
              test::Half<fp16>::eta);
  }
}

TYPED_TEST(HalfHost, ToleranceAddsOneUnitRoundoffPerRounding) {
  using H = TypeParam;
  constexpr double u = test::Half<H>::u;
  constexpr test::Tol none{0.0, 0.0};
  EXPECT_EQ(test::after_roundings<H>(none, 0).rtol, 0.0);
  EXPECT_DOUBLE_EQ(test::after_roundings<H>(none, 1).rtol, u);
  EXPECT_DOUBLE_EQ(test::after_roundings<H>(none, 2).rtol, 2 * u + u * u);
  EXPECT_DOUBLE_EQ(test::after_roundings<H>(none, 1).atol, test::Half<H>::eta);
  constexpr test::Tol t = test::after_roundings<H>(test::Tol{1e-5, 1e-6}, 1);
  EXPECT_DOUBLE_EQ(t.rtol, 1e-5 * (1 + u) + u);
  EXPECT_DOUBLE_EQ(t.atol_rel, 1e-6 * (1 + u));
  // The bound holds for a value rounded once after an fp32 error of rtol.
  const float c = 1.2345678f, a = c * (1 + 1e-5f);
  EXPECT_LE(std::fabs(static_cast<float>(H(a)) - c), t.rtol * c);
}

}  // namespace
}  // namespace mds
