// Shared helpers for the CUDA kernel tests: the GPU check every test starts with, host <-> device
// copies, and comparison of a GPU result with the CPU kernel's at a per-dtype tolerance.
//
// The tests run each CUDA kernel and the CPU kernel (mds::ops, itself tested against naive
// references in tests/ops_*_test.cpp) on the same inputs. Without a visible GPU every test that
// needs one skips with "no CUDA GPU visible: compiled only".
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <vector>

#include "../ops_test_util.h"
#include "mds/core/cuda_check.h"
#include "mds/ops/cuda/allocator.h"

namespace mds::test {

inline bool cuda_gpu_visible() {
  static const bool visible = [] {
    int count = 0;
    const bool ok = cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
    (void)cudaGetLastError();  // clear the error of a failed query
    return ok;
  }();
  return visible;
}

#define MDS_REQUIRE_GPU()                                                                       \
  do {                                                                                          \
    if (!::mds::test::cuda_gpu_visible()) GTEST_SKIP() << "no CUDA GPU visible: compiled only"; \
  } while (0)

// A fixture for tests that need a GPU: skips in SetUp, so the body never runs without one.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override { MDS_REQUIRE_GPU(); }
};

template <typename T>
class CudaTestWithParam : public ::testing::TestWithParam<T> {
 protected:
  void SetUp() override { MDS_REQUIRE_GPU(); }
};

// The kernels run on the legacy default stream (0), which orders them with these synchronous
// copies.
template <typename T>
ops::cuda::DeviceBuffer<T> to_device(const std::vector<T>& host) {
  ops::cuda::DeviceBuffer<T> dev(host.size());
  if (!host.empty())
    MDS_CUDA_CHECK(cudaMemcpy(dev.data(), host.data(), dev.bytes(), cudaMemcpyHostToDevice));
  return dev;
}

template <typename T>
std::vector<T> to_host(const ops::cuda::DeviceBuffer<T>& dev) {
  MDS_CUDA_CHECK(cudaDeviceSynchronize());  // also surfaces an asynchronous kernel fault here
  std::vector<T> host(dev.size());
  if (!host.empty())
    MDS_CUDA_CHECK(cudaMemcpy(host.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost));
  return host;
}

// Tolerances of a GPU fp32 kernel against the CPU fp32 kernel: both round the same
// mathematical result, in different orders (rtol), with an absolute floor relative to the
// largest |value| for elements that cancel to near zero.
struct Tol {
  double rtol, atol_rel;
};
// Not yet calibrated on a GPU (none was at hand): a few ulp of FMA contraction, expf against
// the CPU's fast_exp, and cancellation (silu' crosses zero, rotations of opposite-signed pairs)
// are what they must absorb; a wrong index or formula misses them by orders of magnitude.
constexpr Tol kFp32Elementwise{5e-6, 1e-6};  // same formula, FMA contraction / expf vs fast_exp
constexpr Tol kFp32Reduction{1e-5, 1e-6};    // row sums / dots in a different order
constexpr Tol kFp32Gemm{1e-5, 1e-5};         // k-term sums, cuBLASLt's order vs OpenBLAS's

inline ::testing::AssertionResult close_to_cpu(const std::vector<float>& gpu,
                                               const std::vector<float>& cpu, Tol tol) {
  return all_close(gpu, to_double(cpu), tol.rtol, tol.atol_rel);
}

}  // namespace mds::test
