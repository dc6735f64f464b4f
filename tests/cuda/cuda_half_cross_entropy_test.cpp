// Cross entropy over 16-bit logits (bf16 and fp16, typed tests) against the fp32 CPU kernel on the
// same H-rounded logits: losses fp32 (the fp32 tolerance), dlogits 16-bit (one rounding), padding
// exactly 0; in place; the three vocab-parallel passes on two column slices reduced on the host.
// (Bad targets: the host rejects them, ops/targets.h; cuda_cross_entropy_test shows the rest.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda_test_util.h"
#include "mds/ops/cuda/ops_cuda.h"
#include "mds/ops/ops.h"

namespace mds {
namespace {

using test::close_to_cpu;
using test::kFp32Reduction;
using test::to_device;
using test::to_device_half;
using test::to_host;
using test::to_host_float;

template <typename H>
class CudaCrossEntropyHalf : public test::CudaTest {
 protected:
  static constexpr test::Tol kGrad = test::after_roundings<H>(kFp32Reduction, 1);
  int64_t n = 19, vocab = 1000, vpad = 1024;
  // Logits of a few units, as an LM head gives them: far inside fp16's range.
  std::vector<float> logits = test::randn_half<H>(static_cast<size_t>(n * vpad), 51, 4.0f);
  std::vector<int32_t> targets = [this] {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>((i * 131 + 7) % vocab);
    t[0] = 0, t[1] = static_cast<int32_t>(vocab - 1);  // the edges of the vocabulary
    return t;
  }();
  float dscale = 1.0f / 19;
};
TYPED_TEST_SUITE(CudaCrossEntropyHalf, test::HalfTypes, test::HalfTypeName);

TYPED_TEST(CudaCrossEntropyHalf, ForwardAndForwardBackwardMatchCpuIncludingInPlace) {
  using H = TypeParam;
  const int64_t n = this->n, vocab = this->vocab, vpad = this->vpad;
  const auto& logits = this->logits;
  std::vector<float> loss(static_cast<size_t>(n)), dlogits(logits.size());
  ops::cross_entropy_forward_backward(loss.data(), dlogits.data(), logits.data(),
                                      this->targets.data(), n, vpad, vocab, this->dscale);
  auto g_logits = to_device_half<H>(logits);
  auto g_t = to_device(this->targets);
  auto g_loss = to_device(std::vector<float>(loss.size()));
  auto g_dlogits = to_device_half<H>(std::vector<float>(logits.size(), 5.0f));
  ops::cuda::cross_entropy_forward(g_loss.data(), g_logits.data(), g_t.data(), n, vpad, vocab,
                                   nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_loss), loss, kFp32Reduction));
  ops::cuda::cross_entropy_forward_backward(g_loss.data(), g_dlogits.data(), g_logits.data(),
                                            g_t.data(), n, vpad, vocab, this->dscale, nullptr);
  EXPECT_TRUE(close_to_cpu(to_host(g_loss), loss, kFp32Reduction));
  const auto gd = to_host_float(g_dlogits);
  EXPECT_TRUE(close_to_cpu(gd, dlogits, TestFixture::kGrad));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = vocab; j < vpad; ++j) ASSERT_EQ(gd[i * vpad + j], 0.0f) << "padding gradient";
  ops::cuda::cross_entropy_forward_backward(g_loss.data(), g_logits.data(), g_logits.data(),
                                            g_t.data(), n, vpad, vocab, this->dscale, nullptr);
  EXPECT_TRUE(test::same_bits(to_host_float(g_logits), gd)) << "in place differs";
}

// Two ranks' column slices [0, 512) and [512, 1024) (the second holding the padding).
TYPED_TEST(CudaCrossEntropyHalf, VocabParallelPassesMatchCpu) {
  using H = TypeParam;
  const int64_t n = this->n, vocab = this->vocab, vpad = this->vpad, cols = vpad / 2;
  const auto& logits = this->logits;
  std::vector<float> ref_loss(static_cast<size_t>(n)), ref_d(logits.size());
  ops::cross_entropy_forward_backward(ref_loss.data(), ref_d.data(), logits.data(),
                                      this->targets.data(), n, vpad, vocab, this->dscale);
  auto g_t = to_device(this->targets);
  std::vector<std::vector<float>> row_max(2), tlogit(2);
  std::vector<ops::cuda::DeviceBuffer<test::DeviceHalf<H>>> g_slice;
  for (int r = 0; r < 2; ++r) {
    std::vector<float> slice(static_cast<size_t>(n * cols));
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(logits.begin() + i * vpad + r * cols, cols, slice.begin() + i * cols);
    g_slice.push_back(to_device_half<H>(slice));
    auto g_max = to_device(std::vector<float>(static_cast<size_t>(n)));
    auto g_tl = to_device(std::vector<float>(static_cast<size_t>(n)));
    ops::cuda::cross_entropy_local_max(g_max.data(), g_tl.data(), g_slice[r].data(), g_t.data(), n,
                                       cols, r * cols, vocab, nullptr);
    row_max[r] = to_host(g_max);
    tlogit[r] = to_host(g_tl);
  }
  std::vector<float> gmax(static_cast<size_t>(n)), gtl(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    gmax[i] = std::max(row_max[0][i], row_max[1][i]), gtl[i] = tlogit[0][i] + tlogit[1][i];
  auto g_gmax = to_device(gmax);
  std::vector<double> sum(static_cast<size_t>(n), 0.0);
  for (int r = 0; r < 2; ++r) {
    auto g_sum = to_device(std::vector<double>(static_cast<size_t>(n)));
    ops::cuda::cross_entropy_local_sum_exp(g_sum.data(), g_slice[r].data(), g_gmax.data(), n, cols,
                                           r * cols, vocab, nullptr);
    const auto part = to_host(g_sum);
    for (int64_t i = 0; i < n; ++i) sum[i] += part[i];
  }
  auto g_gsum = to_device(sum);
  auto g_gtl = to_device(gtl);
  for (int r = 0; r < 2; ++r) {
    auto g_loss = to_device(std::vector<float>(static_cast<size_t>(n)));
    ops::cuda::cross_entropy_finish(g_loss.data(), g_slice[r].data(), g_slice[r].data(),
                                    g_gmax.data(), g_gsum.data(), g_gtl.data(), g_t.data(), n, cols,
                                    r * cols, vocab, this->dscale, nullptr);
    EXPECT_TRUE(close_to_cpu(to_host(g_loss), ref_loss, kFp32Reduction));
    const auto d = to_host_float(g_slice[r]);
    std::vector<float> ref_slice(d.size());
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(ref_d.begin() + i * vpad + r * cols, cols, ref_slice.begin() + i * cols);
    EXPECT_TRUE(close_to_cpu(d, ref_slice, TestFixture::kGrad)) << "rank " << r;
  }
}

}  // namespace
}  // namespace mds
