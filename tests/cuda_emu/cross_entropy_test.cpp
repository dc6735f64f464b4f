// The cross-entropy kernels (src/mds/ops/cuda/cross_entropy.cuh), their source unmodified, run on
// the CPU under the CUDA emulator against the CPU kernels (ops/cpu/cross_entropy.cpp; the 16-bit
// reference ops/cpu/half_cross_entropy.h) in fp32, bf16 and fp16, at the GPU tests' tolerances:
// the single-device form as cross_entropy.cu composes it from the three passes (losses only,
// with dlogits, and with dlogits over the logits in place), and the vocab-parallel passes on
// three ranks: one holding real columns only, one ending in padding, one holding padding only
// (row max -inf), with each row's target on another rank for two of them. fp32 finishes from
// pass 2's exponentials, 16-bit from the logits (finish_from_logits_kernel).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernel_test_util.h"
#include "mds/ops/cpu/half_reference.h"
#include "mds/ops/cuda/cross_entropy.cuh"
#include "mds/ops/ops.h"

namespace {

using namespace emu_test;  // NOLINT(google-build-using-namespace): the test helpers
using mds::test::randn;
namespace k = mds::ops::cuda::cross_entropy_kernels;

constexpr int kThreads = 256;  // cross_entropy.cu's; a block per row
constexpr float kDscale = 0.25f;

int64_t real_columns(int64_t cols, int64_t col_begin, int64_t vocab) {  // cross_entropy.cu's
  return std::clamp<int64_t>(vocab - col_begin, 0, cols);
}

// The three passes over one rank's columns [col_begin, col_begin + cols), as cross_entropy.cu
// launches them. dlogits null: losses only. fp32 keeps pass 2's exponentials in dlogits (which
// may be the logits: in place); 16-bit finishes from the logits (dlogits may alias them).
template <typename T>
struct Passes {
  int64_t n, cols, col_begin, vocab;
  int64_t real() const { return real_columns(cols, col_begin, vocab); }
  void local_max(float* row_max, float* target_logit, const T* logits, const int32_t* t) const {
    launch(static_cast<unsigned>(n), 1, kThreads, [&] {
      k::local_max_kernel<T>(row_max, target_logit, logits, t, cols, col_begin, real());
    });
  }
  void local_sum_exp(double* sum_exp, T* dlogits, const T* logits, const float* row_max) const {
    float* exps = nullptr;
    if constexpr (std::is_same_v<T, float>) exps = dlogits;
    launch(static_cast<unsigned>(n), 1, kThreads,
           [&] { k::local_sum_exp_kernel<T>(sum_exp, exps, logits, row_max, cols, real()); });
  }
  void finish(float* losses, T* dlogits, const T* logits, const float* row_max,
              const double* sum_exp, const float* target_logit, const int32_t* t) const {
    launch(static_cast<unsigned>(n), 1, kThreads, [&] {
      if constexpr (std::is_same_v<T, float>)
        k::finish_kernel(losses, dlogits, row_max, sum_exp, target_logit, t, cols, col_begin,
                         kDscale);
      else
        k::finish_from_logits_kernel<T>(losses, dlogits, logits, row_max, sum_exp, target_logit, t,
                                        cols, col_begin, real(), kDscale);
    });
  }
};

std::vector<float> as_float(const std::vector<double>& x) {
  return std::vector<float>(x.begin(), x.end());
}

template <typename T>
class EmuCrossEntropy : public EmuTest {};
TYPED_TEST_SUITE(EmuCrossEntropy, StorageTypes, StorageName);

TYPED_TEST(EmuCrossEntropy, SingleDeviceMatchesCpuIncludingInPlace) {
  using T = TypeParam;
  constexpr int64_t n = 4, vocab = 300, vpad = 320;  // 20 padding columns
  const std::vector<int32_t> targets = {0, 299, 17, 150};
  const auto logits = store<T>(randn(n * vpad, 21, 2.0f));
  std::vector<float> loss_cpu(n);
  std::vector<T> d_cpu(n * vpad);
  mds::ops::cross_entropy_forward_backward(loss_cpu.data(), d_cpu.data(), logits.data(),
                                           targets.data(), n, vpad, vocab, kDscale);
  enum class Grad { none, separate, in_place };
  for (const Grad grad : {Grad::none, Grad::separate, Grad::in_place}) {
    std::vector<T> x = logits, d(n * vpad);
    T* dlogits = grad == Grad::none ? nullptr : grad == Grad::in_place ? x.data() : d.data();
    std::vector<float> row_max(n), target_logit(n), losses(n);
    std::vector<double> sum_exp(n);
    const Passes<T> p{n, vpad, 0, vocab};
    p.local_max(row_max.data(), target_logit.data(), x.data(), targets.data());
    p.local_sum_exp(sum_exp.data(), dlogits, x.data(), row_max.data());
    p.finish(losses.data(), dlogits, x.data(), row_max.data(), sum_exp.data(), target_logit.data(),
             targets.data());
    const int g = static_cast<int>(grad);
    EXPECT_TRUE(close_to_cpu(losses, loss_cpu, kFp32Reduction)) << "grad " << g;
    if (grad != Grad::none)
      EXPECT_TRUE(close_to_cpu(grad == Grad::in_place ? x : d, d_cpu, kFp32Reduction))
          << "grad " << g;
    else
      EXPECT_EQ(bits(x), bits(logits));
  }
}

TYPED_TEST(EmuCrossEntropy, VocabParallelPassesMatchCpu) {
  using T = TypeParam;
  constexpr int64_t n = 4, ranks = 3, cols = 112, vocab = 200;  // real: 112, 88, 0
  const std::vector<int32_t> targets = {5, 150, 199, 111};
  const auto full = randn(n * ranks * cols, 22, 2.0f);
  std::vector<std::vector<T>> logits(ranks);
  for (int64_t r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < cols; ++j) logits[r].push_back(T(full[(i * ranks + r) * cols + j]));

  // Pass 1 on every rank, then the all-reduce: max of row_max, sum of target_logit.
  std::vector<float> row_max(n, -INFINITY), target_logit(n, 0.0f);
  for (int64_t r = 0; r < ranks; ++r) {
    std::vector<float> mx(n), tl(n), mx_cpu(n), tl_cpu(n);
    Passes<T>{n, cols, r * cols, vocab}.local_max(mx.data(), tl.data(), logits[r].data(),
                                                  targets.data());
    mds::ops::cross_entropy_local_max(mx_cpu.data(), tl_cpu.data(), logits[r].data(),
                                      targets.data(), n, cols, r * cols, vocab);
    EXPECT_EQ(bits(mx), bits(mx_cpu)) << "rank " << r;  // a max and a copy: exact
    EXPECT_EQ(bits(tl), bits(tl_cpu)) << "rank " << r;
    for (int64_t i = 0; i < n; ++i)
      row_max[i] = std::max(row_max[i], mx[i]), target_logit[i] += tl[i];
  }
  // Pass 2 against the global max, then the sum over ranks.
  std::vector<double> sum_exp(n, 0.0);
  std::vector<std::vector<T>> d(ranks, std::vector<T>(n * cols));
  for (int64_t r = 0; r < ranks; ++r) {
    std::vector<double> se(n), se_cpu(n);
    Passes<T>{n, cols, r * cols, vocab}.local_sum_exp(se.data(), d[r].data(), logits[r].data(),
                                                      row_max.data());
    if constexpr (std::is_same_v<T, float>)
      mds::ops::cross_entropy_local_sum_exp(se_cpu.data(), nullptr, logits[r].data(),
                                            row_max.data(), n, cols, r * cols, vocab);
    else
      mds::ops::cross_entropy_local_sum_exp(se_cpu.data(), logits[r].data(), row_max.data(), n,
                                            cols, r * cols, vocab);
    EXPECT_TRUE(close_to_cpu(as_float(se), as_float(se_cpu), kFp32Reduction)) << "rank " << r;
    for (int64_t i = 0; i < n; ++i) sum_exp[i] += se[i];
  }
  // Pass 3 on every rank: the same losses, and each rank's slice of the gradient.
  std::vector<float> loss_single(n);
  {
    std::vector<T> all(n * ranks * cols);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t r = 0; r < ranks; ++r)
        std::copy_n(logits[r].begin() + i * cols, cols, all.begin() + (i * ranks + r) * cols);
    mds::ops::cross_entropy_forward(loss_single.data(), all.data(), targets.data(), n, ranks * cols,
                                    vocab);
  }
  for (int64_t r = 0; r < ranks; ++r) {
    std::vector<float> losses(n), losses_cpu(n);
    std::vector<T> d_cpu(n * cols);
    if constexpr (std::is_same_v<T, float>) {
      std::vector<double> unused(n);
      mds::ops::cross_entropy_local_sum_exp(unused.data(), d_cpu.data(), logits[r].data(),
                                            row_max.data(), n, cols, r * cols, vocab);
      mds::ops::cross_entropy_finish(losses_cpu.data(), d_cpu.data(), row_max.data(),
                                     sum_exp.data(), target_logit.data(), targets.data(), n, cols,
                                     r * cols, kDscale);
    } else {
      mds::ops::cross_entropy_finish(losses_cpu.data(), d_cpu.data(), logits[r].data(),
                                     row_max.data(), sum_exp.data(), target_logit.data(),
                                     targets.data(), n, cols, r * cols, vocab, kDscale);
    }
    Passes<T>{n, cols, r * cols, vocab}.finish(losses.data(), d[r].data(), logits[r].data(),
                                               row_max.data(), sum_exp.data(), target_logit.data(),
                                               targets.data());
    EXPECT_TRUE(close_to_cpu(losses, losses_cpu, kFp32Reduction)) << "rank " << r;
    EXPECT_TRUE(close_to_cpu(losses, loss_single, kFp32Reduction)) << "rank " << r;
    EXPECT_TRUE(close_to_cpu(d[r], d_cpu, kFp32Reduction)) << "rank " << r;
  }
}

}  // namespace
