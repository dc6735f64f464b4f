// The emulated device itself (tests/cuda_emu/device, under mds_cuda_on_emu_tests): it refuses
// and reports what a GPU's runtime would (a write past an allocation, a launch beyond its
// shared memory, a copy from what is not device memory, a barrier not every thread reaches), so the
// backend's tests on it can fail for the reasons a GPU run would.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "mds/ops/cuda/common.cuh"

namespace mds {
namespace {

using ops::cuda::launch;

__global__ void write_at(float* x, int64_t i) {
  if (threadIdx.x == 0) x[i] = 1.0f;
}

// A barrier that thread 0 never reaches: a GPU hangs or faults, the emulator reports it.
__global__ void divergent_barrier(float* out) {
  if (threadIdx.x != 0) __syncthreads();
  *out = 1.0f;
}

class EmulatedDevice : public ::testing::Test {
 protected:
  void TearDown() override { emu_runtime::clear_sticky_error(); }
};

TEST_F(EmulatedDevice, FreshMemoryIsNaNAndAWritePastTheEndIsReportedAtFree) {
  float* x = nullptr;
  ASSERT_EQ(cudaMalloc(&x, 10 * sizeof(float)), cudaSuccess);
  float first = 0.0f;
  ASSERT_EQ(cudaMemcpy(&first, x, sizeof first, cudaMemcpyDeviceToHost), cudaSuccess);
  EXPECT_TRUE(std::isnan(first));
  launch(write_at, 1, 32, 0, nullptr, x, int64_t{9});  // the last element: fine
  ASSERT_EQ(cudaFree(x), cudaSuccess);

  ASSERT_EQ(cudaMalloc(&x, 10 * sizeof(float)), cudaSuccess);
  launch(write_at, 1, 32, 0, nullptr, x, int64_t{10});  // one past the end
  EXPECT_EQ(cudaFree(x), cudaErrorIllegalAddress);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorIllegalAddress);  // sticky, as a faulted context
}

TEST_F(EmulatedDevice, AnAccessIntoAGuardPageFaultsWithAMessage) {
  // 256 bytes end where the guard page after them begins; the page before them starts 3840
  // bytes below them.
  float* x = nullptr;
  ASSERT_EQ(cudaMalloc(&x, 64 * sizeof(float)), cudaSuccess);
  EXPECT_DEATH(launch(write_at, 1, 32, 0, nullptr, x, int64_t{64 + 16}),
               "an access outside device memory");
  EXPECT_DEATH(launch(write_at, 1, 32, 0, nullptr, x, int64_t{-1000}),
               "an access outside device memory");
  launch(write_at, 1, 32, 0, nullptr, x, int64_t{-1});  // below the start, inside the page
  EXPECT_EQ(cudaFree(x), cudaErrorIllegalAddress);
}

TEST_F(EmulatedDevice, SharedMemoryAbove48KiBNeedsTheKernelsOptIn) {
  float* out = nullptr;
  ASSERT_EQ(cudaMalloc(&out, sizeof(float)), cudaSuccess);
  const auto run = emu_runtime::run_kernel(
      reinterpret_cast<const void*>(&write_at), dim3(1), 32, 64 * 1024, [](void*) {}, nullptr);
  EXPECT_EQ(run, cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);  // not sticky
  EXPECT_EQ(emu_runtime::run_kernel(
                reinterpret_cast<const void*>(&write_at), dim3(1), 2048, 0, [](void*) {}, nullptr),
            cudaErrorInvalidConfiguration);
  (void)cudaGetLastError();
  ASSERT_EQ(cudaFree(out), cudaSuccess);
}

TEST_F(EmulatedDevice, CopiesCheckWhichSideIsDeviceMemory) {
  std::vector<float> host(4, 1.0f), other(4);
  float* x = nullptr;
  ASSERT_EQ(cudaMalloc(&x, 4 * sizeof(float)), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(x, host.data(), 16, cudaMemcpyHostToDevice), cudaSuccess);
  EXPECT_EQ(cudaMemcpy(other.data(), host.data(), 16, cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaMemcpy(other.data(), x, 32, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  (void)cudaGetLastError();
  EXPECT_EQ(cudaFree(host.data()), cudaErrorInvalidValue);
  (void)cudaGetLastError();
  ASSERT_EQ(cudaFree(x), cudaSuccess);
}

TEST_F(EmulatedDevice, WhatTheEmulatorReportsIsALaunchFailure) {
  float* out = nullptr;
  ASSERT_EQ(cudaMalloc(&out, sizeof(float)), cudaSuccess);
  EXPECT_THROW(launch(divergent_barrier, 1, 64, 0, nullptr, out), InternalError);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaErrorLaunchFailure);
  emu_runtime::clear_sticky_error();
  ASSERT_EQ(cudaFree(out), cudaSuccess);
}

}  // namespace
}  // namespace mds
