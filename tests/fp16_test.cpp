// The host fp16 conversion (core/fp16.h) against GCC's IEEE binary16 `_Float16` (x86-64: the
// libgcc conversions, round to nearest even): every one of the 65536 fp16 bit patterns widened
// to fp32, and fp32 -> fp16 on a strided sample of all 2^32 fp32 bit patterns plus every
// rounding boundary of fp16 (each midpoint between neighbours and the floats either side of it).
// Then by hand what the loss scaler and the tolerances rely on: 65504 is the largest value,
// anything from 65520 up is inf, subnormals down to 2^-24 with ties to even below, the unit
// roundoff 2^-11, the canonical NaN 0x7fff; and the storage type mds::fp16.
#include "mds/core/fp16.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "mds/core/buffer.h"

#if !defined(__FLT16_MAX__)
#error "these tests compare with the compiler's _Float16 (GCC >= 12 on x86-64)"
#endif

namespace mds {
namespace {

uint16_t gcc_bits(float x) {
  return std::bit_cast<uint16_t>(static_cast<_Float16>(x));
}
float gcc_float(uint16_t bits) {
  return static_cast<float>(std::bit_cast<_Float16>(bits));
}
uint32_t bits_of(float x) {
  return std::bit_cast<uint32_t>(x);
}

// fp16_bits(x) is GCC's rounding of x, bit for bit; a NaN is the canonical NaN (GCC keeps the
// payload, so its bits are not compared).
::testing::AssertionResult rounds_as_gcc(float x) {
  const uint16_t got = fp16_bits(x);
  const uint16_t want = std::isnan(x) ? uint16_t{0x7fff} : gcc_bits(x);
  if (got == want) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << std::hex << "fp32 0x" << bits_of(x) << " (" << x
                                       << "): fp16_bits 0x" << got << ", _Float16 0x" << want;
}

TEST(Fp16, EveryBitPatternWidensAsGcc) {
  int nans = 0;
  for (uint32_t b = 0; b < (1u << 16); ++b) {
    const auto h = static_cast<uint16_t>(b);
    const float got = fp16_to_float(h), want = gcc_float(h);
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << "0x" << b;
      ++nans;
      continue;
    }
    ASSERT_EQ(bits_of(got), bits_of(want)) << std::hex << "0x" << b;
    ASSERT_EQ(fp16_bits(got), h) << std::hex << "0x" << b;  // and back, exactly
  }
  EXPECT_EQ(nans, 2 * 1023);  // exponent 31 with a nonzero mantissa, either sign
}

TEST(Fp16, AStridedSampleOfAllFloatsRoundsAsGcc) {
  // Every 4099th of the 2^32 patterns (4099 is prime: the sample walks through every mantissa
  // and exponent), about a million floats of every magnitude and sign.
  int64_t checked = 0;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 4099) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(u));
    ASSERT_TRUE(rounds_as_gcc(x));
    ++checked;
  }
  EXPECT_GT(checked, 1000000);
}

TEST(Fp16, EveryRoundingBoundaryRoundsAsGcc) {
  // For each pair of neighbouring non-negative fp16 values (the last pair: 65504 and the 65536
  // it would round to past the range), the exact midpoint (a tie) and the floats either side.
  for (uint32_t b = 0; b < 0x7c00; ++b) {
    const float lo = fp16_to_float(static_cast<uint16_t>(b));
    const float hi = b + 1 < 0x7c00 ? fp16_to_float(static_cast<uint16_t>(b + 1)) : 65536.0f;
    const float mid = lo + (hi - lo) / 2;  // exact: one bit more than fp16 keeps
    for (float x : {lo, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), hi}) {
      ASSERT_TRUE(rounds_as_gcc(x));
      ASSERT_TRUE(rounds_as_gcc(-x));
    }
  }
}

TEST(Fp16, TheRangeEndsAt65504AndOverflowsToInf) {
  EXPECT_EQ(fp16_bits(65504.0f), 0x7bff);
  EXPECT_EQ(fp16_to_float(0x7bff), kFp16Max);
  EXPECT_EQ(fp16_bits(65519.99f), 0x7bff);  // below the midpoint 65520: down to 65504
  EXPECT_EQ(fp16_bits(65520.0f), 0x7c00);   // the midpoint, 0x7bff odd: up, past the range
  EXPECT_EQ(fp16_bits(-65520.0f), 0xfc00);
  EXPECT_EQ(fp16_bits(1e30f), 0x7c00);
  EXPECT_EQ(fp16_bits(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(fp16_bits(INFINITY), 0x7c00);
  EXPECT_EQ(fp16_bits(-INFINITY), 0xfc00);
  EXPECT_EQ(fp16_to_float(0x7c00), INFINITY);
  EXPECT_EQ(fp16_to_float(0xfc00), -INFINITY);
}

TEST(Fp16, SubnormalsGoDownTo2ToTheMinus24WithTiesToEven) {
  const float tiny = std::ldexp(1.0f, -24);  // the smallest subnormal, 0x0001
  EXPECT_EQ(fp16_bits(tiny), 0x0001);
  EXPECT_EQ(fp16_to_float(0x0001), tiny);
  EXPECT_EQ(fp16_bits(std::ldexp(1.0f, -25)), 0x0000);  // half of it, a tie: to even (0)
  EXPECT_EQ(fp16_bits(-std::ldexp(1.0f, -25)), 0x8000);
  EXPECT_EQ(fp16_bits(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);  // past the tie
  EXPECT_EQ(fp16_bits(3 * std::ldexp(1.0f, -26)), 0x0001);                    // 0.75 x 2^-24: up
  EXPECT_EQ(fp16_bits(3 * std::ldexp(1.0f, -25)), 0x0002);  // 1.5 x 2^-24, a tie: up to even
  EXPECT_EQ(fp16_bits(5 * std::ldexp(1.0f, -25)), 0x0002);  // 2.5 x 2^-24, a tie: down to even
  EXPECT_EQ(fp16_bits(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(fp16_bits(std::ldexp(1.0f, -14)), 0x0400);     // the smallest normal
  EXPECT_EQ(fp16_bits(std::ldexp(1023.0f, -24)), 0x03ff);  // the largest subnormal
  EXPECT_EQ(fp16_bits(std::ldexp(2047.0f, -25)), 0x0400);  // its tie with 2^-14: up to even
}

TEST(Fp16, NormalValuesRoundToNearestWithTiesToEven) {
  // 1 = 0x3c00; the next fp16 above it is 1 + 2^-10 = 0x3c01, so 1 + 2^-11 (= 1 + u) is a tie.
  const float u = float(kFp16UnitRoundoff);
  EXPECT_EQ(fp16_bits(1.0f), 0x3c00);
  EXPECT_EQ(fp16_bits(1.0f + u), 0x3c00);                        // tie, 0x3c00 even: down
  EXPECT_EQ(fp16_bits(std::nextafter(1.0f + u, 2.0f)), 0x3c01);  // above the half: up
  EXPECT_EQ(fp16_bits(std::nextafter(1.0f + u, 0.0f)), 0x3c00);  // below the half: down
  EXPECT_EQ(fp16_bits(1.0f + 3 * u), 0x3c02);                    // tie, 0x3c01 odd: up
  EXPECT_EQ(fp16_bits(-(1.0f + 3 * u)), 0xbc02);                 // the same for negatives
  EXPECT_EQ(fp16_bits(std::nextafter(2.0f, 0.0f)), 0x4000);      // carry into the exponent
  EXPECT_EQ(fp16_bits(2049.0f), 0x6800);                         // 2048 + 1, a tie: to 2048
  EXPECT_EQ(fp16_bits(2051.0f), 0x6802);                         // 2050 + 1, a tie: to 2052
  EXPECT_EQ(fp16_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(fp16_to_float(0xc200), -3.0f);
}

TEST(Fp16, ZerosAndNans) {
  EXPECT_EQ(fp16_bits(0.0f), 0x0000);
  EXPECT_EQ(fp16_bits(-0.0f), 0x8000);
  EXPECT_EQ(bits_of(fp16_to_float(0x8000)), bits_of(-0.0f));
  EXPECT_EQ(fp16_bits(std::numeric_limits<float>::quiet_NaN()), 0x7fff);
  EXPECT_EQ(fp16_bits(-std::numeric_limits<float>::quiet_NaN()), 0x7fff);
  EXPECT_EQ(fp16_bits(std::bit_cast<float>(0x7f800001u)), 0x7fff);  // signalling: not inf
  EXPECT_EQ(fp16_bits(std::bit_cast<float>(0xffc00000u)), 0x7fff);
  EXPECT_TRUE(std::isnan(fp16_to_float(0x7fff)));
  EXPECT_TRUE(std::isnan(fp16_to_float(0x7c01)));  // the smallest NaN mantissa
  EXPECT_TRUE(std::isnan(fp16_to_float(0xfe00)));
}

TEST(Fp16, RelativeErrorIsAtMostTheUnitRoundoffInTheNormalRange) {
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> log2_magnitude(-14.0f, 15.99f);  // [2^-14, 65504]
  double worst = 0.0;
  for (int i = 0; i < 200000; ++i) {
    const float x = std::exp2(log2_magnitude(gen)) * (i % 2 ? -1.0f : 1.0f);
    if (std::fabs(x) > kFp16Max) continue;
    const float r = round_to_fp16(x);
    worst = std::max(worst, std::fabs(static_cast<double>(r) - x) / std::fabs(x));
    ASSERT_EQ(round_to_fp16(r), r) << "rounding is not idempotent at " << x;
  }
  EXPECT_LE(worst, kFp16UnitRoundoff);
  EXPECT_GT(worst, 0.9 * kFp16UnitRoundoff);  // and the bound is nearly reached
  // Below 2^-14 the spacing stays 2^-24: the absolute error is at most 2^-25, not relative.
  EXPECT_EQ(round_to_fp16(std::ldexp(1.4f, -20)), std::ldexp(22.0f, -24));
}

// ---- The storage type -------------------------------------------------------------------------

TEST(Fp16Type, IsTheBitsOfTheHostConversion) {
  static_assert(sizeof(fp16) == 2 && std::is_trivially_copyable_v<fp16>);
  static_assert(fp16(1.0f).bits == 0x3c00 && static_cast<float>(fp16::from_bits(0xc200)) == -3.0f);
  static_assert(fp16(65520.0f).bits == 0x7c00);  // constexpr, as the CUDA kernels use it
  static_assert(is_half_storage_v<fp16> && !is_half_storage_v<float>);
  EXPECT_STREQ(storage_name<fp16>(), "fp16");
  std::mt19937 gen(53);
  for (int i = 0; i < 10000; ++i) {
    const float x = std::bit_cast<float>(static_cast<uint32_t>(gen()));
    ASSERT_EQ(fp16(x).bits, fp16_bits(x));
    ASSERT_EQ(bits_of(static_cast<float>(fp16(x))), bits_of(round_to_fp16(x)));
  }
  EXPECT_NE(fp16(0.0f), fp16(-0.0f));  // == compares the stored bits
  EXPECT_EQ(fp16(NAN), fp16(NAN));
  Buffer<fp16> b(ops::cpu_backend(), 3);
  b[0] = fp16(1.5f), b[1] = fp16(-65504.0f), b[2] = fp16(1e6f);
  b.resize(1000);
  b.resize(3);
  EXPECT_EQ(b.to_host(), (std::vector<fp16>{fp16(1.5f), fp16(-kFp16Max), fp16(INFINITY)}));
  EXPECT_EQ(b.bytes(), 6);
}

}  // namespace
}  // namespace mds
