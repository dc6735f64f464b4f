// The optimizer-side kernels (src/mds/ops/cuda/adamw.cuh, elementwise.cuh, non_finite.cuh,
// convert.cuh), their source unmodified, run on the CPU under the CUDA emulator against the CPU
// kernels (ops/cpu/adamw.cpp, elementwise.cpp; ops/cpu/half_elementwise.h): AdamW over 300
// elements (a block and a partial one) writing its 16-bit copy, whose bits are the master's
// rounding; add, add_inplace (fp32 and 16-bit) and scale_inplace bit for bit; sum_squares over
// two chunks (one short), deterministic under another thread order; the non-finite check finding
// an inf or a NaN in the last, partial warp; to_half / to_fp32 bit for bit, fp16 overflowing to
// inf.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernel_test_util.h"
#include "mds/ops/adamw_coefficients.h"
#include "mds/ops/cpu/half_reference.h"
#include "mds/ops/cuda/adamw.cuh"
#include "mds/ops/cuda/convert.cuh"
#include "mds/ops/cuda/elementwise.cuh"
#include "mds/ops/cuda/non_finite.cuh"
#include "mds/ops/ops.h"

namespace {

using namespace emu_test;  // NOLINT(google-build-using-namespace): the test helpers
using mds::test::randn;
namespace cu = mds::ops::cuda;

constexpr int kThreads = 256;  // the .cu files' block size

// adamw.cu's update(): the scalar coefficients of ops/adamw_coefficients.h, one grid-stride pass.
template <typename H>
void adamw(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
           float beta1, float beta2, float eps, float weight_decay, int64_t step,
           float grad_scale) {
  const mds::ops::AdamWCoefficients c =
      mds::ops::adamw_coefficients(lr, beta1, beta2, weight_decay, step);
  launch(blocks_for(n, kThreads), 1, kThreads, [&] {
    cu::adamw_kernels::adamw_kernel<H>(p, p_half, g, m, v, n, c.decay, beta1, beta2, c.one_minus_b1,
                                       c.one_minus_b2, c.step_size, c.bias2_sqrt, eps, grad_scale);
  });
}

template <typename T>
class EmuOptim : public EmuTest {};
TYPED_TEST_SUITE(EmuOptim, StorageTypes, StorageName);

TYPED_TEST(EmuOptim, AdamWMatchesCpuAndWritesTheRoundedCopy) {
  using T = TypeParam;
  constexpr int64_t n = 300;
  const std::vector<float> g = randn(n, 41), p0 = randn(n, 42), m0 = randn(n, 43, 0.1f);
  std::vector<float> v0 = randn(n, 44, 0.1f);
  for (float& x : v0) x *= x;
  std::vector<float> p = p0, m = m0, v = v0, p_cpu = p0, m_cpu = m0, v_cpu = v0;
  std::vector<T> p_half(n, T(7.0f));
  for (int64_t step = 1; step <= 3; ++step) {
    if constexpr (std::is_same_v<T, float>) {
      adamw<float>(p.data(), nullptr, g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f,
                   0.1f, step, 0.5f);
    } else {
      adamw<T>(p.data(), p_half.data(), g.data(), m.data(), v.data(), n, 1e-2f, 0.9f, 0.95f, 1e-8f,
               0.1f, step, 0.5f);
    }
    mds::ops::adamw_step(p_cpu.data(), g.data(), m_cpu.data(), v_cpu.data(), n, 1e-2f, 0.9f, 0.95f,
                         1e-8f, 0.1f, step, 0.5f);
  }
  EXPECT_TRUE(close_to_cpu(p, p_cpu, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(m, m_cpu, kFp32Elementwise));
  EXPECT_TRUE(close_to_cpu(v, v_cpu, kFp32Elementwise));
  if constexpr (!std::is_same_v<T, float>) {
    EXPECT_EQ(bits(p_half), bits(store<T>(p)));
  }
}

TYPED_TEST(EmuOptim, AddInPlaceMatchesCpuBitForBit) {
  using T = TypeParam;
  namespace ek = cu::elementwise_kernels;
  constexpr int64_t n = 300;
  const auto x = store<T>(randn(n, 45)), y0 = store<T>(randn(n, 46));
  std::vector<T> y = y0, y_cpu = y0;
  launch(blocks_for(n, kThreads), 1, kThreads,
         [&] { ek::add_inplace_kernel<T>(y.data(), x.data(), n); });
  mds::ops::add_inplace(y_cpu.data(), x.data(), n);
  EXPECT_EQ(bits(y), bits(y_cpu));
}

// The conversions exist for the 16-bit types only.
template <typename H>
class EmuConvert : public EmuTest {};
using HalfTypes = ::testing::Types<bf16, fp16>;
TYPED_TEST_SUITE(EmuConvert, HalfTypes, StorageName);

TYPED_TEST(EmuConvert, ConversionsAreTheHostRoundingAndExact) {
  using T = TypeParam;
  namespace ck = cu::convert_kernels;
  std::vector<float> x = randn(300, 47, 100.0f);
  x[0] = 70000.0f, x[1] = -1e-9f, x[2] = std::numeric_limits<float>::infinity();  // fp16: inf
  std::vector<T> h(x.size()), h_cpu(x.size());
  const auto n = static_cast<int64_t>(x.size());
  launch(blocks_for(n, kThreads), 1, kThreads,
         [&] { ck::convert_kernel<T, float>(h.data(), x.data(), n); });
  mds::ops::to_half(h_cpu.data(), x.data(), n);
  EXPECT_EQ(bits(h), bits(h_cpu));
  std::vector<float> back(x.size()), back_cpu(x.size());
  launch(blocks_for(n, kThreads), 1, kThreads,
         [&] { ck::convert_kernel<float, T>(back.data(), h.data(), n); });
  mds::ops::to_fp32(back_cpu.data(), h.data(), n);
  EXPECT_EQ(bits(back), bits(back_cpu));
}

class EmuElementwise : public EmuTest {};

TEST_F(EmuElementwise, AddAndScaleMatchCpuBitForBit) {
  namespace ek = cu::elementwise_kernels;
  constexpr int64_t n = 300;
  const std::vector<float> a = randn(n, 48), b = randn(n, 49);
  std::vector<float> y(n), y_cpu(n);
  launch(blocks_for(n, kThreads), 1, kThreads,
         [&] { ek::add_kernel(y.data(), a.data(), b.data(), n); });
  mds::ops::add(y_cpu.data(), a.data(), b.data(), n);
  EXPECT_EQ(bits(y), bits(y_cpu));
  launch(blocks_for(n, kThreads), 1, kThreads,
         [&] { ek::scale_inplace_kernel(y.data(), 0.3f, n); });
  mds::ops::scale_inplace(y_cpu.data(), 0.3f, n);
  EXPECT_EQ(bits(y), bits(y_cpu));
}

TEST_F(EmuElementwise, SumSquaresMatchesCpuAndIsDeterministic) {
  namespace ek = cu::elementwise_kernels;
  const int64_t n = ek::kChunk + 1000;  // two chunks, the second short
  const std::vector<float> x = randn(n, 50);
  // elementwise.cu's sum_squares_async: a block of kThreads per chunk, then one of 1024.
  const auto run = [&] {
    const int64_t chunks = (n + ek::kChunk - 1) / ek::kChunk;
    std::vector<double> partial(chunks, NAN);
    double out = NAN;
    launch(static_cast<unsigned>(chunks), 1, kThreads,
           [&] { ek::sum_squares_chunks_kernel(partial.data(), x.data(), n); });
    launch(1, 1, 1024, [&] { ek::sum_partials_kernel(&out, partial.data(), chunks); });
    return out;
  };
  const double got = run();
  const double cpu = mds::ops::sum_squares(x.data(), n);
  EXPECT_NEAR(got, cpu, 1e-12 * cpu);
  emu::options.shuffle_seed = 5;
  EXPECT_EQ(run(), got) << "depends on the thread order";
}

TEST_F(EmuElementwise, NonFiniteFindsInfAndNanInThePartialLastWarp) {
  namespace nk = cu::non_finite_kernels;
  constexpr int64_t n = 1000;  // 4 blocks of 256, the last warp holds 8 elements
  const float bad[] = {0.0f, std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity(), std::nanf("")};
  for (const float b : bad) {
    for (const int64_t at : {int64_t{0}, int64_t{517}, n - 1}) {
      std::vector<float> x = randn(n, 51);
      x[at] = b;
      int32_t flag = 0;
      // non_finite.cu: min(blocks_for(n, kThreads), 4096) blocks.
      launch(blocks_for(n, kThreads), 1, kThreads,
             [&] { nk::non_finite_kernel(&flag, x.data(), n); });
      EXPECT_EQ(flag != 0, mds::ops::any_non_finite(x.data(), n)) << b << " at " << at;
      EXPECT_EQ(flag != 0, !std::isfinite(b)) << b << " at " << at;
    }
  }
}

}  // namespace
