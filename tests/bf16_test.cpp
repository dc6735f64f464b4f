// The host bf16 conversion (core/bf16.h): round to nearest with ties to even at the 16-bit cut,
// the special values, and the unit roundoff 2^-8 that the CUDA tests' bf16 tolerances assume;
// and the storage type mds::bf16 (its bits, its ==, Buffer<bf16>).
#include "mds/core/bf16.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "mds/core/buffer.h"

namespace mds {
namespace {

float from_bits(uint32_t u) {
  return std::bit_cast<float>(u);
}

TEST(Bf16, RoundsToNearestWithTiesToEven) {
  // 1 = 0x3f80'0000; the next bf16 above it is 1 + 2^-7 = 0x3f81.
  EXPECT_EQ(bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits(from_bits(0x3f807fff)), 0x3f80);  // below the half: down
  EXPECT_EQ(bf16_bits(from_bits(0x3f808000)), 0x3f80);  // tie, 0x3f80 even: down
  EXPECT_EQ(bf16_bits(from_bits(0x3f808001)), 0x3f81);  // above the half: up
  EXPECT_EQ(bf16_bits(from_bits(0x3f818000)), 0x3f82);  // tie, 0x3f81 odd: up to even
  EXPECT_EQ(bf16_bits(from_bits(0xbf818000)), 0xbf82);  // the same for negative values
  EXPECT_EQ(bf16_bits(1.0f + 1.0f / 256), 0x3f80);      // 1 + u, a tie
  EXPECT_EQ(bf16_bits(from_bits(0x3f7fffff)), 0x3f80);  // carry into the exponent
}

TEST(Bf16, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16_bits(0.0f), 0x0000);
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  EXPECT_EQ(bf16_bits(inf), 0x7f80);
  EXPECT_EQ(bf16_bits(-inf), 0xff80);
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::max()), 0x7f80);  // overflows to inf
  EXPECT_EQ(bf16_bits(-std::numeric_limits<float>::max()), 0xff80);
  EXPECT_EQ(bf16_bits(from_bits(0x7f7f7fff)), 0x7f7f);  // the largest bf16 stays finite
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::quiet_NaN()), 0x7fff);
  EXPECT_EQ(bf16_bits(from_bits(0xff800001)), 0x7fff);  // a signalling NaN: canonical, not inf
  EXPECT_EQ(bf16_bits(from_bits(0x00000001)), 0x0000);  // the smallest subnormal: to zero
  EXPECT_EQ(bf16_bits(from_bits(0x00008000)), 0x0000);  // subnormal tie to even (0)
  EXPECT_EQ(bf16_bits(from_bits(0x00018000)), 0x0002);  // subnormal tie to even (up)
  EXPECT_TRUE(std::isnan(bf16_to_float(0x7fff)));
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xc040), -3.0f);
}

TEST(Bf16, RelativeErrorIsAtMostTheUnitRoundoff) {
  std::mt19937 gen(7);
  std::uniform_int_distribution<uint32_t> bits(0, 0xffffffffu);
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const float x = from_bits(bits(gen));
    if (!std::isfinite(x) || std::fabs(x) < std::numeric_limits<float>::min()) continue;
    const float r = round_to_bf16(x);
    if (!std::isfinite(r)) continue;  // rounded past the largest bf16
    worst = std::max(worst, std::fabs(static_cast<double>(r) - x) / std::fabs(x));
    ASSERT_EQ(round_to_bf16(r), r) << "rounding is not idempotent at " << x;
  }
  EXPECT_LE(worst, kBf16UnitRoundoff);
  EXPECT_GT(worst, 0.9 * kBf16UnitRoundoff);  // and the bound is reached (ties exist)
}

// ---- The storage type -------------------------------------------------------------------------

TEST(Bf16Type, IsTheBitsOfTheHostConversion) {
  static_assert(sizeof(bf16) == 2 && std::is_trivially_copyable_v<bf16>);
  static_assert(bf16(1.0f).bits == 0x3f80 && static_cast<float>(bf16::from_bits(0xc040)) == -3.0f);
  std::mt19937 gen(52);
  for (int i = 0; i < 10000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(gen()));
    ASSERT_EQ(bf16(x).bits, bf16_bits(x));
    ASSERT_EQ(std::bit_cast<uint32_t>(static_cast<float>(bf16(x))),
              std::bit_cast<uint32_t>(round_to_bf16(x)));
  }
  EXPECT_NE(bf16(0.0f), bf16(-0.0f));  // == compares the stored bits
  EXPECT_EQ(bf16(NAN), bf16(NAN));
}

TEST(Bf16Type, BufferKeepsItsContentsAcrossAResize) {
  Buffer<bf16> b(ops::cpu_backend(), 3);
  b[0] = bf16(1.5f), b[1] = bf16(-2.0f), b[2] = bf16::from_bits(0x7f80);
  b.resize(1000);
  b.resize(3);
  EXPECT_EQ(b.to_host(), (std::vector<bf16>{bf16(1.5f), bf16(-2.0f), bf16(INFINITY)}));
  EXPECT_EQ(b.bytes(), 6);
}

}  // namespace
}  // namespace mds
