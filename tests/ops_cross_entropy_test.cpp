// Cross entropy over a padded vocabulary: losses against a double log-sum-exp over the real
// columns, gradients against finite differences, padding that neither moves the loss nor
// receives gradient, in-place gradients, large-logit stability, and out-of-range targets.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "mds/core/error.h"
#include "mds/ops/ops.h"
#include "mds/ops/targets.h"
#include "ops_test_util.h"

namespace mds {
namespace {

constexpr int64_t kN = 6, kVocab = 13, kVpad = 16;
constexpr float kDscale = 0.37f;

std::vector<double> naive_losses(const std::vector<double>& logits, const std::vector<int32_t>& t) {
  std::vector<double> out(kN);
  for (int64_t i = 0; i < kN; ++i) {
    const double* x = logits.data() + i * kVpad;
    double mx = x[0];
    for (int64_t j = 0; j < kVocab; ++j) mx = std::max(mx, x[j]);
    double sum = 0;
    for (int64_t j = 0; j < kVocab; ++j) sum += std::exp(x[j] - mx);
    out[i] = std::log(sum) + mx - x[t[i]];
  }
  return out;
}

class CrossEntropy : public ::testing::Test {
 protected:
  std::vector<int32_t> targets = {0, 12, 5, 5, 7, 1};
  std::vector<float> logits = [] {
    auto x = test::randn(kN * kVpad, 1, 3.0f);
    for (int64_t i = 0; i < kN; ++i)  // padding holds large values that would dominate if used
      for (int64_t j = kVocab; j < kVpad; ++j) x[i * kVpad + j] = 50.0f;
    return x;
  }();

  std::vector<float> losses(const std::vector<float>& x) const {
    std::vector<float> out(kN);
    ops::cross_entropy_forward(out.data(), x.data(), targets.data(), kN, kVpad, kVocab);
    return out;
  }
};

TEST_F(CrossEntropy, ForwardMatchesNaive) {
  EXPECT_TRUE(
      test::all_close(losses(logits), naive_losses(test::to_double(logits), targets), 1e-6, 1e-7));
}

TEST_F(CrossEntropy, BackwardMatchesFiniteDifferences) {
  std::vector<float> l(kN), dlogits(logits.size(), 9.0f);
  ops::cross_entropy_forward_backward(l.data(), dlogits.data(), logits.data(), targets.data(), kN,
                                      kVpad, kVocab, kDscale);
  EXPECT_TRUE(test::same_bits(l, losses(logits)));
  auto loss = [&](const std::vector<double>& x) {  // L = dscale * sum(losses)
    double acc = 0;
    for (double v : naive_losses(x, targets)) acc += v;
    return acc * kDscale;
  };
  const auto idx = test::sample_indices(logits.size(), logits.size(), 0);
  const auto fd = test::finite_differences(loss, test::to_double(logits), idx, 1e-5);
  EXPECT_TRUE(test::all_close(dlogits, fd, 1e-4, 1e-5));
  for (int64_t i = 0; i < kN; ++i)
    for (int64_t j = kVocab; j < kVpad; ++j) EXPECT_EQ(dlogits[i * kVpad + j], 0.0f);
}

TEST_F(CrossEntropy, PaddedLogitsDoNotChangeTheLoss) {
  std::vector<float> moved = logits;
  for (int64_t i = 0; i < kN; ++i) moved[i * kVpad + kVocab + 1] = -1e4f * static_cast<float>(i);
  EXPECT_TRUE(test::same_bits(losses(moved), losses(logits)));
}

TEST_F(CrossEntropy, InPlaceGradientEqualsOutOfPlace) {
  std::vector<float> l(kN), dlogits(logits.size());
  ops::cross_entropy_forward_backward(l.data(), dlogits.data(), logits.data(), targets.data(), kN,
                                      kVpad, kVocab, kDscale);
  std::vector<float> l2(kN), inplace = logits;
  ops::cross_entropy_forward_backward(l2.data(), inplace.data(), inplace.data(), targets.data(), kN,
                                      kVpad, kVocab, kDscale);
  EXPECT_TRUE(test::same_bits(inplace, dlogits));
  EXPECT_TRUE(test::same_bits(l2, l));
}

TEST_F(CrossEntropy, LargeLogitsStayFinite) {
  std::vector<float> big = logits;
  for (auto& x : big) x *= 1000.0f;  // exp() of these overflows without the max subtraction
  const auto l = losses(big);
  EXPECT_TRUE(test::all_close(l, naive_losses(test::to_double(big), targets), 1e-6, 1e-7));
}

TEST_F(CrossEntropy, TargetOutsideVocabularyIsAUserError) {
  targets[3] = kVocab;  // a padding column is not a token
  std::vector<float> out(kN);
  EXPECT_THROW(
      ops::cross_entropy_forward(out.data(), logits.data(), targets.data(), kN, kVpad, kVocab),
      UserError);
}

// The host check the model's head runs once per micro-batch (the CUDA kernels rely on it): the
// first bad position is named, negative ids too.
TEST(CheckTargets, NamesTheFirstTokenOutsideTheVocabulary) {
  const std::vector<int32_t> good{0, 5, int32_t{kVocab} - 1};
  EXPECT_NO_THROW(ops::check_targets(good.data(), 3, kVocab));
  for (const int64_t bad : {int64_t{-1}, kVocab, kVpad}) {
    const std::vector<int32_t> t{0, 5, static_cast<int32_t>(bad), -7};
    try {
      ops::check_targets(t.data(), 4, kVocab);
      FAIL() << "no error for " << bad;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("target token id " + std::to_string(bad) +
                                           " (position 2) is outside the model vocabulary"),
                std::string::npos)
          << e.what();
    }
  }
}

// The vocab-parallel passes over column slices, with the reductions between them done here by
// hand (max, then sums), give the single-slice losses and gradients. Slices of 4 columns: the
// last holds 1 real column and 3 padding columns.
TEST_F(CrossEntropy, VocabParallelPassesMatchTheWholeVocabulary) {
  constexpr int64_t kRanks = 4, kCols = kVpad / kRanks;
  std::vector<std::vector<float>> slices(kRanks, std::vector<float>(kN * kCols));
  for (int64_t r = 0; r < kRanks; ++r)
    for (int64_t i = 0; i < kN; ++i)
      for (int64_t j = 0; j < kCols; ++j)
        slices[r][i * kCols + j] = logits[i * kVpad + r * kCols + j];
  std::vector<float> row_max(kN, -1e30f), target_logit(kN, 0.0f);
  std::vector<double> sum_exp(kN, 0.0);
  for (int64_t r = 0; r < kRanks; ++r) {
    std::vector<float> mx(kN), tl(kN);
    ops::cross_entropy_local_max(mx.data(), tl.data(), slices[r].data(), targets.data(), kN, kCols,
                                 r * kCols, kVocab);
    for (int64_t i = 0; i < kN; ++i) {
      row_max[i] = std::max(row_max[i], mx[i]);
      target_logit[i] += tl[i];
    }
  }
  for (int64_t r = 0; r < kRanks; ++r) {
    std::vector<double> se(kN);
    ops::cross_entropy_local_sum_exp(se.data(), slices[r].data(), slices[r].data(), row_max.data(),
                                     kN, kCols, r * kCols, kVocab);
    for (int64_t i = 0; i < kN; ++i) sum_exp[i] += se[i];
  }
  std::vector<float> whole_l(kN), whole_d(logits.size());
  ops::cross_entropy_forward_backward(whole_l.data(), whole_d.data(), logits.data(), targets.data(),
                                      kN, kVpad, kVocab, kDscale);
  for (int64_t r = 0; r < kRanks; ++r) {
    std::vector<float> l(kN);
    ops::cross_entropy_finish(l.data(), slices[r].data(), row_max.data(), sum_exp.data(),
                              target_logit.data(), targets.data(), kN, kCols, r * kCols, kDscale);
    EXPECT_TRUE(test::all_close(l, test::to_double(whole_l), 1e-6, 1e-7));
    std::vector<double> expected(kN * kCols);
    for (int64_t i = 0; i < kN; ++i)
      for (int64_t j = 0; j < kCols; ++j)
        expected[i * kCols + j] = whole_d[i * kVpad + r * kCols + j];
    EXPECT_TRUE(test::all_close(slices[r], expected, 1e-6, 1e-7)) << "slice " << r;
  }
}

TEST_F(CrossEntropy, VocabParallelTargetOutsideVocabularyIsAUserError) {
  targets[0] = -1;
  std::vector<float> mx(kN), tl(kN);
  EXPECT_THROW(ops::cross_entropy_local_max(mx.data(), tl.data(), logits.data(), targets.data(), kN,
                                            kVpad, 0, kVocab),
               UserError);
}

}  // namespace
}  // namespace mds
