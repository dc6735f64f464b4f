// The RMSNorm kernels (src/mds/ops/cuda/rmsnorm.cuh), their source unmodified, run on the CPU
// under the CUDA emulator against the CPU kernels (ops/cpu/rmsnorm.cpp; the 16-bit reference
// ops/cpu/half_rmsnorm.h) in fp32, bf16 and fp16, at the GPU tests' tolerances: the forward
// (y, rstd), the backward's dx (accumulating into its prior) and its two-kernel weight gradient
// (dw +=), bit-identical when the threads run in another order, and the residual-fused forms
// with resid_out aliasing x and the residual gradient absent, separate or aliasing dsum.
// Shapes: h 300 (past one block of 256 threads, not a multiple of it), h 64 with 70 rows (two
// row chunks of the weight gradient, the last one short), and one row of one column.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "kernel_test_util.h"
#include "mds/ops/cpu/half_reference.h"
#include "mds/ops/cuda/rmsnorm.cuh"
#include "mds/ops/ops.h"

namespace {

using namespace emu_test;  // NOLINT(google-build-using-namespace): the test helpers
using mds::test::randn;
namespace k = mds::ops::cuda::rmsnorm_kernels;

constexpr int kThreads = 256;  // rmsnorm.cu's
constexpr float kEps = 1e-5f;

struct Shape {
  int64_t n, h;
};
constexpr Shape kShapes[] = {{3, 300}, {70, 64}, {1, 1}};

// rmsnorm.cu's forward(): a block per row. r and resid_out null: the plain norm.
template <typename T>
void forward(T* y, T* resid_out, float* rstd, const T* x, const T* r, const T* w, int64_t n,
             int64_t h) {
  launch(static_cast<unsigned>(n), 1, kThreads,
         [&] { k::rmsnorm_forward_kernel<T>(y, resid_out, rstd, x, r, w, h, kEps); });
}

// rmsnorm.cu's backward(): dx per row, then the weight gradient's per-chunk column sums (a NaN
// scratch, so an entry the partial kernel misses shows) and their in-order reduction.
template <typename T>
void backward(T* dx, const T* prior, float* dw, const T* dy, const T* x, const T* w,
              const float* rstd, int64_t n, int64_t h) {
  launch(static_cast<unsigned>(n), 1, kThreads,
         [&] { k::rmsnorm_backward_dx_kernel<T>(dx, prior, dy, x, w, rstd, h); });
  const int64_t chunks = (n + k::kRowChunk - 1) / k::kRowChunk;
  std::vector<float> partial(static_cast<size_t>(chunks * h), NAN);
  launch(blocks_for(h, kThreads), static_cast<unsigned>(chunks), kThreads,
         [&] { k::rmsnorm_backward_dw_partial_kernel<T>(partial.data(), dy, x, rstd, n, h); });
  launch(blocks_for(h, kThreads), 1, kThreads,
         [&] { k::rmsnorm_backward_dw_reduce_kernel(dw, partial.data(), chunks, h); });
}

template <typename T>
class EmuRMSNorm : public EmuTest {};
TYPED_TEST_SUITE(EmuRMSNorm, StorageTypes, StorageName);

TYPED_TEST(EmuRMSNorm, ForwardMatchesCpu) {
  using T = TypeParam;
  for (const auto [n, h] : kShapes) {
    const auto x = store<T>(randn(n * h, 1)), w = store<T>(randn(h, 2, 0.5f));
    std::vector<T> y(n * h), y_cpu(n * h);
    std::vector<float> rstd(n), rstd_cpu(n);
    forward<T>(y.data(), nullptr, rstd.data(), x.data(), nullptr, w.data(), n, h);
    mds::ops::rmsnorm_forward(y_cpu.data(), rstd_cpu.data(), x.data(), w.data(), n, h, kEps);
    EXPECT_TRUE(close_to_cpu(rstd, rstd_cpu, kFp32Elementwise)) << n << " x " << h;
    EXPECT_TRUE(close_to_cpu(y, y_cpu, kFp32Elementwise)) << n << " x " << h;
  }
}

TYPED_TEST(EmuRMSNorm, BackwardAccumulatesLikeCpuAndIsDeterministic) {
  using T = TypeParam;
  for (const auto [n, h] : kShapes) {
    const auto x = store<T>(randn(n * h, 3)), w = store<T>(randn(h, 4, 0.5f));
    const auto dy = store<T>(randn(n * h, 5)), prior = store<T>(randn(n * h, 6, 0.1f));
    std::vector<T> y(n * h);
    std::vector<float> rstd(n);
    mds::ops::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), n, h, kEps);
    const std::vector<float> dw0 = randn(h, 7, 0.1f);

    std::vector<T> dx = prior, dx_cpu = prior;
    std::vector<float> dw = dw0, dw_cpu = dw0;
    backward<T>(dx.data(), dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), n, h);
    mds::ops::rmsnorm_backward(dx_cpu.data(), dw_cpu.data(), dy.data(), x.data(), w.data(),
                               rstd.data(), n, h);
    EXPECT_TRUE(close_to_cpu(dx, dx_cpu, kFp32Reduction)) << n << " x " << h;
    EXPECT_TRUE(close_to_cpu(dw, dw_cpu, kFp32Reduction)) << n << " x " << h;

    emu::options.shuffle_seed = 11;  // another thread order: the same bits
    std::vector<T> dx2 = prior;
    std::vector<float> dw2 = dw0;
    backward<T>(dx2.data(), dx2.data(), dw2.data(), dy.data(), x.data(), w.data(), rstd.data(), n,
                h);
    emu::options.shuffle_seed = 0;
    EXPECT_EQ(bits(dx2), bits(dx)) << n << " x " << h;
    EXPECT_EQ(bits(dw2), bits(dw)) << n << " x " << h;
  }
}

TYPED_TEST(EmuRMSNorm, ResidualForwardMatchesCpuIncludingInPlace) {
  using T = TypeParam;
  for (const auto [n, h] : kShapes) {
    const auto x = store<T>(randn(n * h, 8)), r = store<T>(randn(n * h, 9));
    const auto w = store<T>(randn(h, 10, 0.5f));
    std::vector<T> y_cpu(n * h), s_cpu(n * h);
    std::vector<float> rstd_cpu(n);
    mds::ops::rmsnorm_residual_forward(y_cpu.data(), s_cpu.data(), rstd_cpu.data(), x.data(),
                                       r.data(), w.data(), n, h, kEps);
    for (const bool in_place : {false, true}) {
      std::vector<T> xs = x, y(n * h), s(n * h);
      std::vector<float> rstd(n);
      T* out = in_place ? xs.data() : s.data();  // resid_out may alias x
      forward<T>(y.data(), out, rstd.data(), xs.data(), r.data(), w.data(), n, h);
      const std::vector<T>& resid = in_place ? xs : s;
      EXPECT_EQ(bits(resid), bits(s_cpu)) << n << " x " << h << " in place " << in_place;
      EXPECT_TRUE(close_to_cpu(rstd, rstd_cpu, kFp32Elementwise)) << n << " x " << h;
      EXPECT_TRUE(close_to_cpu(y, y_cpu, kFp32Elementwise)) << n << " x " << h;
    }
  }
}

TYPED_TEST(EmuRMSNorm, ResidualBackwardAddsTheResidualGradient) {
  using T = TypeParam;
  enum class Prior { none, separate, aliased };
  for (const auto [n, h] : kShapes) {
    const auto s = store<T>(randn(n * h, 11)), w = store<T>(randn(h, 12, 0.5f));
    const auto dy = store<T>(randn(n * h, 13)), dresid = store<T>(randn(n * h, 14, 0.3f));
    std::vector<T> y(n * h);
    std::vector<float> rstd(n);
    mds::ops::rmsnorm_forward(y.data(), rstd.data(), s.data(), w.data(), n, h, kEps);
    for (const Prior prior : {Prior::none, Prior::separate, Prior::aliased}) {
      const T* cpu_prior = prior == Prior::none ? nullptr : dresid.data();
      std::vector<T> dsum_cpu(n * h);
      std::vector<float> dw_cpu(h, 0.25f);
      mds::ops::rmsnorm_residual_backward(dsum_cpu.data(), dw_cpu.data(), dy.data(), cpu_prior,
                                          s.data(), w.data(), rstd.data(), n, h);
      std::vector<T> dr = dresid, dsum(n * h);
      std::vector<float> dw(h, 0.25f);
      T* out = prior == Prior::aliased ? dr.data() : dsum.data();  // dsum may alias dresid
      backward<T>(out, prior == Prior::none ? nullptr : dr.data(), dw.data(), dy.data(), s.data(),
                  w.data(), rstd.data(), n, h);
      const std::vector<T>& got = prior == Prior::aliased ? dr : dsum;
      const int p = static_cast<int>(prior);
      EXPECT_TRUE(close_to_cpu(got, dsum_cpu, kFp32Reduction)) << n << " x " << h << " prior " << p;
      EXPECT_TRUE(close_to_cpu(dw, dw_cpu, kFp32Reduction)) << n << " x " << h << " prior " << p;
    }
  }
}

}  // namespace
