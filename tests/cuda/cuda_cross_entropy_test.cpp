// Cross-entropy kernels on the GPU against the CPU ones, fp32: the single-device loss and
// gradient over a padded vocabulary (also in place), the three vocab-parallel passes on two
// column slices reduced on the host, and a target outside the vocabulary (the host rejects it)
// spoiling only its own row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda_test_util.h"
#include "mds/core/error.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kFp32Reduction;
using test::to_device;
using test::to_host;

class CudaCrossEntropy : public test::CudaTest {
 protected:
  // n rows over a 1000-word vocabulary padded to 1024; logits with a wide spread, so the max
  // subtraction matters.
  int64_t n = 19, vocab = 1000, vpad = 1024;
  std::vector<float> logits = test::randn(static_cast<size_t>(n * vpad), 51, 4.0f);
  std::vector<int32_t> targets = [this] {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 131 + 7) % vocab);
    t[0] = 0, t[1] = static_cast<int32_t>(vocab - 1);  // the edges of the vocabulary
    return t;
  }();
  float dscale = 1.0f / 19;
};

TEST_F(CudaCrossEntropy, ForwardAndForwardBackwardMatchCpu) {
  std::vector<float> loss(static_cast<size_t>(n)), loss2(loss.size()), dlogits(logits.size());
  ops::cross_entropy_forward(loss.data(), logits.data(), targets.data(), n, vpad, vocab);
  ops::cross_entropy_forward_backward(loss2.data(), dlogits.data(), logits.data(), targets.data(),
                                      n, vpad, vocab, dscale);
  auto g_logits = to_device(logits);
  auto g_t = to_device(targets);
  auto g_loss = to_device(std::vector<float>(loss.size()));
  auto g_dlogits = to_device(std::vector<float>(logits.size(), 5.0f));
  ops::cuda::cross_entropy_forward(g_loss.data(), g_logits.data(), g_t.data(), n, vpad, vocab,
                                   nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_loss), loss, kFp32Reduction));
  ops::cuda::cross_entropy_forward_backward(g_loss.data(), g_dlogits.data(), g_logits.data(),
                                            g_t.data(), n, vpad, vocab, dscale, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_loss), loss2, kFp32Reduction));
  const auto gd = to_host(g_dlogits);
  EXPECT_TRUE(close_to_cpu(gd, dlogits, kFp32Reduction));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = vocab; j < vpad; ++j) ASSERT_EQ(gd[i * vpad + j], 0.0f) << "padding gradient";
  // In place: dlogits aliasing logits gives the same result.
  ops::cuda::cross_entropy_forward_backward(g_loss.data(), g_logits.data(), g_logits.data(),
                                            g_t.data(), n, vpad, vocab, dscale, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_logits), dlogits, kFp32Reduction));
}

// Two ranks' column slices [0, 512) and [512, 1024) (the second holding the padding); the
// reductions between the passes (max, then sums) done on the host as the communicator would.
TEST_F(CudaCrossEntropy, VocabParallelPassesMatchCpu) {
  const int64_t cols = vpad / 2;
  std::vector<float> ref_loss(static_cast<size_t>(n)), ref_d(logits.size());
  ops::cross_entropy_forward_backward(ref_loss.data(), ref_d.data(), logits.data(), targets.data(),
                                      n, vpad, vocab, dscale);
  auto g_t = to_device(targets);
  std::vector<std::vector<float>> slice(2), row_max(2), tlogit(2);
  std::vector<ops::cuda::DeviceBuffer<float>> g_slice, g_max, g_tl;
  for (int r = 0; r < 2; ++r) {
    slice[r].resize(static_cast<size_t>(n * cols));
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(logits.begin() + i * vpad + r * cols, cols, slice[r].begin() + i * cols);
    g_slice.push_back(to_device(slice[r]));
    g_max.push_back(to_device(std::vector<float>(static_cast<size_t>(n))));
    g_tl.push_back(to_device(std::vector<float>(static_cast<size_t>(n))));
    ops::cuda::cross_entropy_local_max(g_max[r].data(), g_tl[r].data(), g_slice[r].data(),
                                       g_t.data(), n, cols, r * cols, vocab, nullptr);
    row_max[r] = to_host(g_max[r]);
    tlogit[r] = to_host(g_tl[r]);
  }
  std::vector<float> gmax(static_cast<size_t>(n)), gtl(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    gmax[i] = std::max(row_max[0][i], row_max[1][i]), gtl[i] = tlogit[0][i] + tlogit[1][i];
  auto g_gmax = to_device(gmax);
  std::vector<double> sum(static_cast<size_t>(n), 0.0);
  std::vector<ops::cuda::DeviceBuffer<double>> g_sum;
  for (int r = 0; r < 2; ++r) {
    g_sum.push_back(to_device(std::vector<double>(static_cast<size_t>(n))));
    ops::cuda::cross_entropy_local_sum_exp(g_sum[r].data(), g_slice[r].data(), g_slice[r].data(),
                                           g_gmax.data(), n, cols, r * cols, vocab, nullptr);
    const auto part = to_host(g_sum[r]);
    for (int64_t i = 0; i < n; ++i) sum[i] += part[i];
  }
  auto g_gsum = to_device(sum);
  auto g_gtl = to_device(gtl);
  for (int r = 0; r < 2; ++r) {
    auto g_loss = to_device(std::vector<float>(static_cast<size_t>(n)));
    ops::cuda::cross_entropy_finish(g_loss.data(), g_slice[r].data(), g_gmax.data(), g_gsum.data(),
                                    g_gtl.data(), g_t.data(), n, cols, r * cols, dscale, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host(g_loss), ref_loss, kFp32Reduction));
    const auto d = to_host(g_slice[r]);
    std::vector<float> ref_slice(d.size());
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(ref_d.begin() + i * vpad + r * cols, cols, ref_slice.begin() + i * cols);
    EXPECT_TRUE(close_to_cpu(d, ref_slice, kFp32Reduction)) << "rank " << r;
  }
}

// The host checks targets (ops/targets.h); a bad one reaching the kernels spoils its own row's
// loss only, with no out-of-bounds access (compute-sanitizer would see one).
TEST_F(CudaCrossEntropy, TargetOutsideVocabularySpoilsOnlyItsRow) {
  std::vector<float> loss(static_cast<size_t>(n));
  ops::cross_entropy_forward(loss.data(), logits.data(), targets.data(), n, vpad, vocab);
  for (const int32_t bad : {-3, static_cast<int32_t>(vpad + 7), 1 << 30}) {
    auto t = targets;
    t[5] = bad;
    auto g_logits = to_device(logits);
    auto g_t = to_device(t);
    auto g_loss = to_device(std::vector<float>(loss.size()));
    ops::cuda::cross_entropy_forward(g_loss.data(), g_logits.data(), g_t.data(), n, vpad, vocab,
                                     nullptr);
    auto got = to_host(g_loss);
    // No target: the loss is the row's logsumexp, the CPU loss plus the target's logit.
    EXPECT_NEAR(got[5], loss[5] + logits[5 * vpad + targets[5]], 1e-4f * std::abs(got[5]));
    got[5] = loss[5];
    EXPECT_TRUE(close_to_cpu(got, loss, kFp32Reduction)) << "target " << bad;
  }
}

}  // namespace
}  // namespace mds
