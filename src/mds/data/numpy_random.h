// numpy's legacy np.random.RandomState(seed), bit for bit: MT19937 seeded with init_genrand,
// and shuffle()/permutation() drawing bounded integers with the legacy masked-rejection
// random_interval. Megatron's index maps (doc_idx, shuffle_idx, blending) are shuffled this way,
// so reproducing them exactly needs this generator, not std::mt19937 + std::shuffle.
// See numpy/random/mtrand.pyx (_shuffle_raw) and numpy/random/src/legacy (random_interval).
#pragma once

#include <array>
#include <cstdint>
#include <numeric>
#include <span>
#include <utility>
#include <vector>

namespace mds::data {

class NumpyRandomState {
 public:
  // RandomState(seed) for an integer seed in [0, 2^32).
  explicit NumpyRandomState(uint32_t seed);

  uint32_t next_uint32();
  uint64_t next_uint64();  // two 32-bit draws, high word first (numpy's mt19937_next64)
  // Uniform integer in [0, max] by masked rejection (numpy's legacy random_interval).
  uint64_t random_interval(uint64_t max);

  // In place, like RandomState.shuffle on a 1-D array: for i = n-1 .. 1, swap x[i], x[j<=i].
  template <typename T>
  void shuffle(std::span<T> x) {
    for (size_t i = x.size(); i-- > 1;) std::swap(x[i], x[random_interval(i)]);
  }
  // RandomState.permutation(n): a shuffled arange(n).
  template <typename T = int64_t>
  std::vector<T> permutation(size_t n) {
    std::vector<T> v(n);
    std::iota(v.begin(), v.end(), T(0));
    shuffle(std::span<T>(v));
    return v;
  }

 private:
  static constexpr int kN = 624;
  std::array<uint32_t, kN> key_{};
  int pos_ = kN;
  void reload();
};

}  // namespace mds::data
