// Shared by the tests that run once per 16-bit storage type of mixed precision, mds::bf16
// (--bf16) and mds::fp16 (--fp16), as GoogleTest typed tests: the type list and its names, the
// unit roundoff every tolerance derives from, and inputs exactly representable in the type.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "mds/core/bf16.h"
#include "mds/core/fp16.h"
#include "mds/model/config.h"
#include "ops_test_util.h"

namespace mds::test {

using HalfTypes = ::testing::Types<bf16, fp16>;
struct HalfTypeName {  // "bf16", "fp16" in the test names
  template <typename H>
  static std::string GetName(int) {
    return storage_name<H>();
  }
};

// u of round to nearest in H: |H(x) - x| <= u |x| for x in H's normal range.
template <typename H>
constexpr double unit_roundoff() {
  static_assert(is_half_storage_v<H>);
  return std::is_same_v<H, bf16> ? kBf16UnitRoundoff : kFp16UnitRoundoff;
}

template <typename H>
constexpr model::Precision precision_of() {
  static_assert(is_half_storage_v<H>);
  return std::is_same_v<H, bf16> ? model::Precision::bf16 : model::Precision::fp16;
}

// x rounded to the nearest H (ties to even), as fp32 (exact).
template <typename H>
float round_to(float x) {
  return static_cast<float>(H(x));
}

// The largest finite H: fp16 65504 (kFp16Max), bf16 (2 - 2^-7) 2^127.
template <typename H>
float largest_finite() {
  static_assert(is_half_storage_v<H>);
  return static_cast<float>(H::from_bits(std::is_same_v<H, fp16> ? 0x7bff : 0x7f7f));
}

// Each value rounded to H (to nearest even), as fp32 (exact).
template <typename H>
std::vector<float> rounded(std::vector<float> x) {
  for (float& v : x) v = round_to<H>(v);
  return x;
}

// n samples of N(0, scale^2) (test::randn's) rounded to H, as fp32 (exact H values).
template <typename H>
std::vector<float> randn_half(size_t n, uint32_t seed, float scale = 1.0f) {
  return rounded<H>(randn(n, seed, scale));
}

}  // namespace mds::test
