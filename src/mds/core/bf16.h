// bfloat16 on the host: the storage type mds::bf16 of bf16 buffers (Buffer<bf16>, the bf16
// kernels of ops/backend.h) and fp32 <-> bf16 conversion as raw 16-bit patterns, without CUDA
// headers, so that CPU code (the CPU backend's bf16 reference kernels, checkpoints, tests) can
// produce and read the bf16 buffers of the GPU.
//
// bf16 is the upper half of an fp32: 1 sign, 8 exponent, 7 mantissa bits, so 8 bits of
// precision and the unit roundoff of round-to-nearest is u = 2^-8 (|bf16(x) - x| <= u |x| for
// every finite x whose rounding stays finite). The conversion promises the bits of CUDA's
// __float2bfloat16_rn (cuda_bf16.h): round to nearest, ties to even; overflow rounds to inf;
// every NaN becomes the canonical NaN 0x7fff, as CUDA's conversion does.
//
// Also included by the CUDA backend's .cu files, which nvcc compiles as C++17: hence the bit
// cast below instead of a bare std::bit_cast.
#pragma once

#include <bit>
#include <cstdint>
#include <type_traits>

namespace mds {

inline constexpr double kBf16UnitRoundoff = 1.0 / 256;  // 2^-8

namespace detail {
template <typename To, typename From>
constexpr To bit_cast(const From& x) {
#if defined(__cpp_lib_bit_cast)
  return std::bit_cast<To>(x);
#else
  return __builtin_bit_cast(To, x);  // C++17 (nvcc): the builtin that std::bit_cast wraps
#endif
}
}  // namespace detail

constexpr uint16_t bf16_bits(float x) {
  const auto u = detail::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;  // NaN
  // Add half an ulp of the kept part, less one unless the kept part is odd: a tie then rounds
  // up only from an odd value, i.e. to even. A carry into the exponent is the right rounding
  // (the largest finite values round up to inf).
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(rounded >> 16);
}

constexpr float bf16_to_float(uint16_t bits) {
  return detail::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

// x rounded to the nearest bf16, as an fp32 (exactly representable).
constexpr float round_to_bf16(float x) {
  return bf16_to_float(bf16_bits(x));
}

// One 16-bit floating-point value as stored, of a Format with to_bits(float) (round to nearest
// even) and to_float(bits) (exact): mds::bf16 below, mds::fp16 (fp16.h). The same 16 bits, size
// and alignment as CUDA's __nv_bfloat16 / __half, so a buffer is handed to the CUDA kernels by
// a reinterpret_cast. Trivial (a default-constructed value is uninitialised, like a float), so
// Buffer<T> and memcpy work on it. No arithmetic: kernels compute in fp32 and convert
// explicitly. == compares the bits (so +0 and -0 differ and a NaN equals itself): the test of
// "the same stored value".
template <typename Format>
struct Float16 {
  uint16_t bits;

  Float16() = default;
  explicit constexpr Float16(float x) : bits(Format::to_bits(x)) {}
  explicit constexpr operator float() const { return Format::to_float(bits); }
  static constexpr Float16 from_bits(uint16_t b) {
    Float16 v{};
    v.bits = b;
    return v;
  }
  friend constexpr bool operator==(Float16 a, Float16 b) { return a.bits == b.bits; }
  friend constexpr bool operator!=(Float16 a, Float16 b) { return a.bits != b.bits; }
};

struct BFloat16Format {
  static constexpr uint16_t to_bits(float x) { return bf16_bits(x); }
  static constexpr float to_float(uint16_t bits) { return bf16_to_float(bits); }
};
using bf16 = Float16<BFloat16Format>;

static_assert(sizeof(bf16) == 2 && alignof(bf16) == 2);
static_assert(std::is_trivially_copyable_v<bf16> &&
              std::is_trivially_default_constructible_v<bf16>);
static_assert(std::is_standard_layout_v<bf16>);

}  // namespace mds
