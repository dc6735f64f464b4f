#include "mds/core/rng.h"

#include <cmath>

namespace mds {
namespace {

// splitmix64's finaliser: a bijective mix with good avalanche, enough for initialisation.
uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;  // splitmix64's counter increment

// A uniform in (0, 1], 53 bits.
double uniform(uint64_t key) {
  return (double(mix(key) >> 11) + 1.0) * 0x1.0p-53;
}

}  // namespace

uint64_t stream_id(std::string_view name) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ULL;
  return h;
}

void fill_normal(float* x, int64_t n, float std, uint64_t seed, uint64_t stream, int64_t first) {
  const uint64_t base = mix(mix(seed) ^ stream);
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) {
    // Box-Muller on the pair (2k, 2k+1): even elements take the cosine, odd the sine.
    const int64_t i = first + j, pair = i / 2;
    const uint64_t key = base + 2 * uint64_t(pair) * kGolden;
    const double u1 = uniform(key), u2 = uniform(key + kGolden);
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    x[j] = float(std * r * (i % 2 ? std::sin(a) : std::cos(a)));
  }
}

}  // namespace mds
