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
// largest |value| for elements that cancel to near zero (atol_rel), and one in absolute terms
// (atol: the 16-bit types' subnormal steps, below).
struct Tol {
  double rtol, atol_rel, atol = 0.0;
};
// Not yet calibrated on a GPU (none was at hand): a few ulp of FMA contraction, expf against
// the CPU's fast_exp, and cancellation (silu' crosses zero, rotations of opposite-signed pairs)
// are what they must absorb; a wrong index or formula misses them by orders of magnitude.
constexpr Tol kFp32Elementwise{5e-6, 1e-6};  // same formula, FMA contraction / expf vs fast_exp
constexpr Tol kFp32Reduction{1e-5, 1e-6};    // row sums / dots in a different order
constexpr Tol kFp32Gemm{1e-5, 1e-5};         // k-term sums, cuBLASLt's order vs OpenBLAS's

// The flash attention kernels (attention_test.cpp; not yet calibrated on a GPU either). Both
// kernels sum the same terms in different orders (the GPU in 32-key tiles with fmaf, the CPU in
// 64-key tiles), and the GPU uses expf where the CPU uses its polynomial fast_exp (a few ulp
// apart), so out/lse differ by ~1e-6 relative; the gradients add the cancellation of dP - D. A
// wrong index, mask or head mapping misses these by orders of magnitude.
constexpr Tol kAttnForward{2e-5, 2e-5};
// The backward's absolute floor is for one token (s = 1): P = 1 and out = v, so dS = dP - D is
// exactly 0 and dq, dk are pure rounding noise (~1e-7) on both devices, in different orders; the
// tests' real gradients are 1e-2 to 1, so the floor hides no index error.
constexpr Tol kAttnBackward{1e-4, 1e-4, 1e-5};

// ---- 16-bit storage: bf16 and fp16 ----
// The typed tests (TYPED_TEST_SUITE(Suite, test::HalfTypes, test::HalfTypeName)) run once per
// 16-bit type H of mixed precision, the host's mds::bf16 or mds::fp16 (core/bf16.h, core/fp16.h);
// Half<H> names the kernels' type (ops_cuda.h: __nv_bfloat16, __half) and H's unit roundoff u.
template <typename H>
struct Half;
// eta is half the smallest subnormal, the most a rounding below the normal range can move a value.
template <>
struct Half<bf16> {
  using Device = __nv_bfloat16;
  static constexpr double u = unit_roundoff<bf16>();  // 2^-8
  static constexpr double eta = 0x1p-134;
};
template <>
struct Half<fp16> {
  using Device = __half;
  static constexpr double u = unit_roundoff<fp16>();  // 2^-11
  static constexpr double eta = 0x1p-25;
};
template <typename H>
using DeviceHalf = typename Half<H>::Device;
// The host type of a device type: DeviceHalf's inverse.
template <typename D>
using HostHalf = std::conditional_t<std::is_same_v<D, __half>, fp16, bf16>;
static_assert(std::is_same_v<HostHalf<DeviceHalf<bf16>>, bf16> &&
              std::is_same_v<HostHalf<DeviceHalf<fp16>>, fp16>);

// HalfTypes and HalfTypeName: the CPU tests' (half_test_util.h).

// A 16-bit kernel is compared with the fp32 CPU kernel run on the same H-rounded inputs (as fp32
// values, exact), so the inputs contribute no error; what differs is the fp32 arithmetic (the
// fp32 tolerance of that kernel, `base`) and each rounding of a result to H that the CPU does
// not do. One round-to-nearest moves a value a by at most u |a| + eta (bf16 u = 2^-8, fp16
// u = 2^-11; eta, for the subnormals, matters for fp16's small gradients only), so if
// |a - c| <= atol + rtol |c| before, then after
//   |H(a) - c| <= u |a| + eta + |a - c| <= (1 + u) atol + eta + (rtol (1 + u) + u) |c|,
// applied once per rounding on the path from the fp32 values to the stored result. The values
// compared under these tolerances stay far below fp16's overflow (65504).
template <typename H>
constexpr Tol after_roundings(Tol base, int roundings) {
  constexpr double u = Half<H>::u;
  for (int i = 0; i < roundings; ++i) {
    base.rtol = base.rtol * (1 + u) + u;
    base.atol_rel = base.atol_rel * (1 + u);
    base.atol = base.atol * (1 + u) + Half<H>::eta;
  }
  return base;
}

// 16-bit GEMMs on the tensor cores: products of bf16 or fp16 values are exact in fp32 (16 or 22
// significant bits), so only the k-term fp32 sums differ from OpenBLAS's. Tensor-core fp32
// accumulation aligns and truncates rather than rounds (Fasi et al., "Numerical behavior of
// NVIDIA tensor cores", PeerJ CS 2021): up to an ulp of the accumulator per MMA step (16 terms),
// ~k/16 * 2^-23 of the partial sums' size; for k = 768 that is ~6e-6 of a typical output and
// ~1e-6 of the largest. 5e-5 leaves a margin of ~10 for the order of the sums (split-k) without
// hiding an index error (O(1)).
constexpr Tol kHalfGemmFp32Sums{5e-5, 5e-5};

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

// all_close with tol.atol folded into its floor relative to the largest |cpu value|.
inline ::testing::AssertionResult close_to_cpu(const std::vector<float>& gpu,
                                               const std::vector<float>& cpu, Tol tol) {
  double scale = 0.0;
  for (float c : cpu) scale = std::max(scale, std::fabs(static_cast<double>(c)));
  const double atol_rel = tol.atol_rel + (scale > 0.0 ? tol.atol / scale : 0.0);
  return all_close(gpu, to_double(cpu), tol.rtol, atol_rel);
}

}  // namespace mds::test
