// Host-only (runs without a GPU): mds's host bf16 conversion (core/bf16.h) gives the bits of
// CUDA's own __float2bfloat16_rn / __bfloat162float (cuda_bf16.h's host path), over every bf16
// bucket and the cut points inside it, so the tests' host-rounded inputs and expected values are
// what the device would compute; and the tolerance helper of cuda_test_util.h.
#include <cuda_bf16.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>

#include "cuda_test_util.h"
#include "mds/core/bf16.h"

namespace mds {
namespace {

uint16_t cuda_bits(float x) {
  const __nv_bfloat16_raw raw = __float2bfloat16_rn(x);
  return raw.x;
}

TEST(Bf16Host, MatchesCudaConversionBitForBit) {
  // Every upper half (sign, exponent, kept mantissa), with the lower halves at and around the
  // rounding cut: 0, 1, just below / at / just above the half, and the top.
  const uint32_t lows[] = {0x0000, 0x0001, 0x3fff, 0x7fff, 0x8000, 0x8001, 0xc000, 0xffff};
  int64_t checked = 0;
  for (uint32_t hi = 0; hi < 0x10000; ++hi) {
    for (uint32_t lo : lows) {
      const float x = std::bit_cast<float>(hi << 16 | lo);
      ASSERT_EQ(bf16_bits(x), cuda_bits(x)) << std::hex << "fp32 bits 0x" << (hi << 16 | lo);
      ++checked;
    }
    __nv_bfloat16_raw raw;
    raw.x = static_cast<unsigned short>(hi);
    const float cuda = __bfloat162float(__nv_bfloat16(raw)), mine = bf16_to_float(raw.x);
    ASSERT_TRUE(std::bit_cast<uint32_t>(cuda) == std::bit_cast<uint32_t>(mine) ||
                (std::isnan(cuda) && std::isnan(mine)))
        << std::hex << "bf16 bits 0x" << hi;
  }
  EXPECT_EQ(checked, int64_t{0x10000} * 8);
}

TEST(Bf16Host, ToleranceAddsOneUnitRoundoffPerRounding) {
  constexpr double u = kBf16UnitRoundoff;
  constexpr test::Tol none{0.0, 0.0};
  EXPECT_EQ(test::after_bf16_roundings(none, 0).rtol, 0.0);
  EXPECT_DOUBLE_EQ(test::after_bf16_roundings(none, 1).rtol, u);
  EXPECT_DOUBLE_EQ(test::after_bf16_roundings(none, 2).rtol, 2 * u + u * u);
  constexpr test::Tol t = test::after_bf16_roundings(test::Tol{1e-5, 1e-6}, 1);
  EXPECT_DOUBLE_EQ(t.rtol, 1e-5 * (1 + u) + u);
  EXPECT_DOUBLE_EQ(t.atol_rel, 1e-6 * (1 + u));
  // The bound holds for a value rounded once after an fp32 error of rtol.
  const float c = 1.2345678f, a = c * (1 + 1e-5f);
  EXPECT_LE(std::fabs(round_to_bf16(a) - c), t.rtol * c);
}

}  // namespace
}  // namespace mds
