// IEEE binary16 ("half") on the host: the storage type mds::fp16 of Megatron's --fp16 mixed
// precision, with fp32 <-> fp16 conversion as raw 16-bit patterns and without CUDA headers, as
// core/bf16.h does for bfloat16.
//
// fp16 has 1 sign, 5 exponent and 10 mantissa bits: 11 bits of precision (unit roundoff
// u = 2^-11) but a narrow range. The largest finite value is 65504; values below 2^-14 are
// subnormal (down to 2^-24) and lose precision, and below 2^-25 they flush to zero. That range
// is why fp16 training scales the loss (train/loss_scaler.h): small activation gradients would
// underflow, and a scale too large overflows to inf, which the scaler detects and backs off.
// The conversion promises the bits of CUDA's __float2half_rn (cuda_fp16.h): round to nearest,
// ties to even, subnormals included; overflow (|x| >= 65520) rounds to inf; every NaN becomes
// the canonical NaN 0x7fff.
#pragma once

#include <cstdint>
#include <type_traits>

#include "mds/core/bf16.h"  // detail::bit_cast, Float16

namespace mds {

inline constexpr double kFp16UnitRoundoff = 1.0 / 2048;  // 2^-11
inline constexpr float kFp16Max = 65504.0f;

constexpr uint16_t fp16_bits(float x) {
  const auto u = detail::bit_cast<uint32_t>(x);
  const auto sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7fff;           // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (a <= 0x33000000u) return sign;            // <= 2^-25 rounds to (signed) zero
  uint32_t kept = 0, rest = 0, half_ulp = 0;    // initialised: a C++17 constexpr (nvcc) needs it
  if (a >= 0x38800000u) {  // normal: re-bias the exponent (127 -> 15), keep 10 mantissa bits
    kept = (a - 0x38000000u) >> 13;
    rest = a & 0x1fffu;
    half_ulp = 0x1000u;
  } else {  // subnormal: the 24-bit significand shifted to units of 2^-24
    const uint32_t significand = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - (a >> 23);  // 14 .. 24
    kept = significand >> shift;
    rest = significand & ((1u << shift) - 1u);
    half_ulp = 1u << (shift - 1u);
  }
  // Round to nearest, ties to even; a carry into the exponent is the right rounding.
  if (rest > half_ulp || (rest == half_ulp && (kept & 1u))) ++kept;
  return static_cast<uint16_t>(sign | kept);
}

constexpr float fp16_to_float(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  if (exponent == 0x1f)  // inf, NaN
    return detail::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {  // zero and subnormals: mantissa * 2^-24, exact in fp32
    const float magnitude = static_cast<float>(mantissa) * (1.0f / 16777216.0f);
    return sign ? -magnitude : magnitude;
  }
  return detail::bit_cast<float>(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// x rounded to the nearest fp16, as an fp32 (exactly representable).
constexpr float round_to_fp16(float x) {
  return fp16_to_float(fp16_bits(x));
}

// One binary16 value as stored (core/bf16.h's Float16): the 16 bits of CUDA's __half.
struct Fp16Format {
  static constexpr uint16_t to_bits(float x) { return fp16_bits(x); }
  static constexpr float to_float(uint16_t bits) { return fp16_to_float(bits); }
};
using fp16 = Float16<Fp16Format>;

static_assert(sizeof(fp16) == 2 && alignof(fp16) == 2);
static_assert(std::is_trivially_copyable_v<fp16> &&
              std::is_trivially_default_constructible_v<fp16>);

// The 16-bit storage types of mixed precision, and what the code needs to know of each.
template <typename T>
inline constexpr bool is_half_storage_v = std::is_same_v<T, bf16> || std::is_same_v<T, fp16>;
template <typename T>
constexpr const char* storage_name() {
  if constexpr (std::is_same_v<T, bf16>)
    return "bf16";
  else if constexpr (std::is_same_v<T, fp16>)
    return "fp16";
  else
    return "fp32";
}

}  // namespace mds
