// Stand-in for CUB's DeviceRadixSort under the CPU emulator: SortPairs as CUB specifies it (a
// stable sort of (key, value) pairs by the key's bits [begin_bit, end_bit), a first call with no
// temporary storage asking its size), done on the host with std::stable_sort.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cuda_runtime_api.h"

namespace cub {

struct DeviceRadixSort {
  template <typename Key, typename Value, typename Count>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, Count n,
                               int begin_bit = 0, int end_bit = sizeof(Key) * 8,
                               cudaStream_t stream = nullptr) {
    (void)stream;
    if (!temp) {  // the size query: some bytes, as CUB always asks for
      temp_bytes = 256;
      return cudaSuccess;
    }
    if (temp_bytes < 256 || begin_bit < 0 || end_bit > int(sizeof(Key) * 8) || begin_bit >= end_bit)
      return cudaErrorInvalidValue;
    const auto bits = [&](Key k) {
      const auto u = static_cast<uint64_t>(k) >> begin_bit;
      return end_bit - begin_bit >= 64 ? u : u & ((uint64_t{1} << (end_bit - begin_bit)) - 1);
    };
    std::vector<size_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t i, size_t j) { return bits(keys_in[i]) < bits(keys_in[j]); });
    std::vector<Key> keys(order.size());
    std::vector<Value> values(order.size());
    for (size_t i = 0; i < order.size(); ++i)
      keys[i] = keys_in[order[i]], values[i] = values_in[order[i]];
    std::copy(keys.begin(), keys.end(), keys_out);
    std::copy(values.begin(), values.end(), values_out);
    return cudaSuccess;
  }
};

}  // namespace cub
