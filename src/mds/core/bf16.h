// bfloat16 on the host: fp32 <-> bf16 conversion as raw 16-bit patterns, without CUDA headers,
// so that CPU code (checkpoints, tests) can produce and read the bf16 buffers of the GPU.
//
// bf16 is the upper half of an fp32: 1 sign, 8 exponent, 7 mantissa bits, so 8 bits of
// precision and the unit roundoff of round-to-nearest is u = 2^-8 (|bf16(x) - x| <= u |x| for
// every finite x whose rounding stays finite). The conversion promises the bits of CUDA's
// __float2bfloat16_rn (cuda_bf16.h): round to nearest, ties to even; overflow rounds to inf;
// every NaN becomes the canonical NaN 0x7fff, as CUDA's conversion does.
#pragma once

#include <bit>
#include <cstdint>

namespace mds {

inline constexpr double kBf16UnitRoundoff = 1.0 / 256;  // 2^-8

constexpr uint16_t bf16_bits(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;  // NaN
  // Add half an ulp of the kept part, less one unless the kept part is odd: a tie then rounds
  // up only from an odd value, i.e. to even. A carry into the exponent is the right rounding
  // (the largest finite values round up to inf).
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

constexpr float bf16_to_float(uint16_t bits) {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

// x rounded to the nearest bf16, as an fp32 (exactly representable).
constexpr float round_to_bf16(float x) {
  return bf16_to_float(bf16_bits(x));
}

}  // namespace mds
