// Shared helpers for the CUDA kernel tests: the GPU check every test starts with, host <-> device
// copies (fp32, and the 16-bit types rounded on the host), the 16-bit storage types the typed
// tests run over, and comparison of a GPU result with the CPU kernel's at a per-dtype tolerance.
//
// The tests run each CUDA kernel and the CPU kernel (mds::ops, itself tested against naive
// references in tests/ops_*_test.cpp) on the same inputs. Without a visible GPU every test that
// needs one skips with "no CUDA GPU visible: compiled only".
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "../half_test_util.h"
#include "../ops_test_util.h"
#include "mds/core/bf16.h"
#include "mds/core/cuda_check.h"
#include "mds/core/fp16.h"
#include "mds/ops/cuda/allocator.h"
#include "tolerances.h"

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

// Tol, the fp32 and attention tolerances and after_roundings: tolerances.h.

// ---- 16-bit storage: bf16 and fp16 ----
// The typed tests (TYPED_TEST_SUITE(Suite, test::HalfTypes, test::HalfTypeName)) run once per
// 16-bit type H of mixed precision, the host's mds::bf16 or mds::fp16 (core/bf16.h, core/fp16.h);
// Half<H> names the kernels' type (ops_cuda.h: __nv_bfloat16, __half) and H's unit roundoff u.
template <typename H>
struct Half;
template <>
struct Half<bf16> : Rounding<bf16> {
  using Device = __nv_bfloat16;  // u = 2^-8
};
template <>
struct Half<fp16> : Rounding<fp16> {
  using Device = __half;  // u = 2^-11
};
template <typename H>
using DeviceHalf = typename Half<H>::Device;
// The host type of a device type: DeviceHalf's inverse.
template <typename D>
using HostHalf = std::conditional_t<std::is_same_v<D, __half>, fp16, bf16>;
static_assert(std::is_same_v<HostHalf<DeviceHalf<bf16>>, bf16> &&
              std::is_same_v<HostHalf<DeviceHalf<fp16>>, fp16>);

// HalfTypes and HalfTypeName: the CPU tests' (half_test_util.h).

// rounded<H> and randn_half<H>: half_test_util.h.

// The H rounding (to nearest even) of each value, on the device.
template <typename H>
ops::cuda::DeviceBuffer<DeviceHalf<H>> to_device_half(const std::vector<float>& host) {
  static_assert(sizeof(DeviceHalf<H>) == sizeof(uint16_t) && sizeof(H) == sizeof(uint16_t));
  std::vector<uint16_t> bits(host.size());
  for (size_t i = 0; i < host.size(); ++i) bits[i] = H(host[i]).bits;
  ops::cuda::DeviceBuffer<DeviceHalf<H>> dev(host.size());
  if (!host.empty())
    MDS_CUDA_CHECK(cudaMemcpy(dev.data(), bits.data(), dev.bytes(), cudaMemcpyHostToDevice));
  return dev;
}

// The 16 bits of each element of a 16-bit device buffer.
template <typename D>
std::vector<uint16_t> bits_of(const ops::cuda::DeviceBuffer<D>& dev) {
  static_assert(sizeof(D) == sizeof(uint16_t));
  MDS_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<uint16_t> bits(dev.size());
  if (!bits.empty())
    MDS_CUDA_CHECK(cudaMemcpy(bits.data(), dev.data(), dev.bytes(), cudaMemcpyDeviceToHost));
  return bits;
}

// A 16-bit device buffer's values as fp32 (exact).
template <typename D>
std::vector<float> to_host_float(const ops::cuda::DeviceBuffer<D>& dev) {
  const std::vector<uint16_t> bits = bits_of(dev);
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    out[i] = static_cast<float>(HostHalf<D>::from_bits(bits[i]));
  return out;
}

}  // namespace mds::test
