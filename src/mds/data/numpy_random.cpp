// MT19937 as numpy's legacy RandomState runs it (numpy/random/src/mt19937/mt19937.c).
#include "mds/data/numpy_random.h"

namespace mds::data {

NumpyRandomState::NumpyRandomState(uint32_t seed) {
  // init_genrand: numpy's mt19937_seed for an integer seed.
  for (int i = 0; i < kN; ++i) {
    key_[i] = seed;
    seed = 1812433253U * (seed ^ (seed >> 30)) + uint32_t(i + 1);
  }
  pos_ = kN;
}

void NumpyRandomState::reload() {
  constexpr int kM = 397;
  constexpr uint32_t kUpper = 0x80000000U, kLower = 0x7fffffffU, kMatrix = 0x9908b0dfU;
  auto twist = [&](uint32_t a, uint32_t b, uint32_t c) {
    uint32_t y = (a & kUpper) | (b & kLower);
    return c ^ (y >> 1) ^ ((y & 1U) ? kMatrix : 0U);
  };
  int i = 0;
  for (; i < kN - kM; ++i) key_[i] = twist(key_[i], key_[i + 1], key_[i + kM]);
  for (; i < kN - 1; ++i) key_[i] = twist(key_[i], key_[i + 1], key_[i + kM - kN]);
  key_[kN - 1] = twist(key_[kN - 1], key_[0], key_[kM - 1]);
  pos_ = 0;
}

uint32_t NumpyRandomState::next_uint32() {
  if (pos_ == kN) reload();
  uint32_t y = key_[pos_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= y >> 18;
  return y;
}

uint64_t NumpyRandomState::next_uint64() {
  uint64_t hi = next_uint32();
  return (hi << 32) | next_uint32();
}

uint64_t NumpyRandomState::random_interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;  // smallest all-ones mask >= max
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (next_uint32() & mask)) > max) {
    }
  } else {
    while ((value = (next_uint64() & mask)) > max) {
    }
  }
  return value;
}

}  // namespace mds::data
