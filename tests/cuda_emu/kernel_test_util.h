// Helpers of the emulated small-kernel tests (rmsnorm_test.cpp, cross_entropy_test.cpp,
// layers_test.cpp, optim_test.cpp): a launch as <<<grid, threads>>> would run it, the storage
// types the kernels are templated on, and comparison with the CPU kernel (mds_lib's ops:: and the
// 16-bit reference of ops/cpu/half_reference.h) at the GPU tests' tolerances.
//
// The launch grids and block sizes are the .cu files' (their host code is not compiled here:
// it needs the CUDA runtime), so a test repeats them next to the launch.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <vector>

#include "../cuda/tolerances.h"
#include "../half_test_util.h"
#include "../ops_test_util.h"
#include "emu.h"
#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

namespace emu_test {

using mds::bf16;
using mds::fp16;

// Every block of grid (x, y), `threads` each, no dynamic shared memory.
inline void launch(unsigned grid_x, unsigned grid_y, int threads, const std::function<void()>& k) {
  emu::launch({grid_x, grid_y, 1}, threads, 0, k);
}
// common.cuh's blocks_for: enough blocks of `threads` for `work` items.
inline unsigned blocks_for(int64_t work, int threads) {
  return static_cast<unsigned>(std::max<int64_t>(1, (work + threads - 1) / threads));
}

// A fixture that starts each test with a clean emulator and ends it by requiring that the
// emulator saw no violation (race, deadlock, mismatched collective).
class EmuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    emu::errors = {};
    emu::options = {};
    emu::mapped.clear();
  }
  void TearDown() override {
    EXPECT_EQ(emu::errors.count, 0) << (emu::errors.first.empty() ? "" : emu::errors.first[0]);
  }
};

// fp32, bf16, fp16: the kernels' storage types T (the shim's __nv_bfloat16 and __half are the
// host's mds::bf16 and mds::fp16, the 16-bit CPU reference's types).
using StorageTypes = ::testing::Types<float, bf16, fp16>;
struct StorageName {
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, float> ? "fp32" : std::is_same_v<T, bf16> ? "bf16" : "fp16";
  }
};

template <typename T>
std::vector<T> store(const std::vector<float>& x) {
  return std::vector<T>(x.begin(), x.end());
}
template <typename T>
std::vector<float> load(const std::vector<T>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = static_cast<float>(x[i]);
  return out;
}
template <typename T>
std::vector<uint32_t> bits(const std::vector<T>& x) {
  std::vector<uint32_t> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if constexpr (std::is_same_v<T, float>)
      out[i] = std::bit_cast<uint32_t>(x[i]);
    else
      out[i] = x[i].bits;
  }
  return out;
}

// The CUDA tests' own tolerances (tests/cuda/tolerances.h): the fp32 kernels against the CPU's,
// and one rounding of the result to a 16-bit type on top (after_roundings).
using mds::test::after_roundings;
using mds::test::kFp32Elementwise;
using mds::test::kFp32Reduction;
using mds::test::Tol;

using mds::test::close_to_cpu;
template <typename T>
::testing::AssertionResult close_to_cpu(const std::vector<T>& got, const std::vector<T>& cpu,
                                        Tol tol) {
  return close_to_cpu(load(got), load(cpu), after_roundings<T>(tol, 1));
}

}  // namespace emu_test
