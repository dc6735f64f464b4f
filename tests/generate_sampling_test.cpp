// The token sampler (infer/sampling.h) on fixed distributions: the kept set and renormalised
// probabilities of top-k and top-p, temperature, ties, the frequencies of many draws, and the
// determinism of a seed.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mds/core/error.h"
#include "mds/infer/sampling.h"

namespace mds {
namespace {

using infer::SamplingOptions;

// Logits of the distribution p (log p), in a shuffled order so that id order != rank order.
//   id:   0     1     2     3     4     5
//   p:  0.10  0.50  0.05  0.20  0.15  0.00001 (then renormalised)
std::vector<float> fixed_logits() {
  return {std::log(0.10f), std::log(0.50f), std::log(0.05f),
          std::log(0.20f), std::log(0.15f), std::log(0.00001f)};
}

std::vector<double> distribution(const std::vector<float>& logits, SamplingOptions o) {
  std::vector<double> p;
  infer::sampling_distribution(p, logits, o);
  return p;
}

void expect_probs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i] == 0.0)
      EXPECT_EQ(got[i], 0.0) << "token " << i << " should be outside the kept set";
    else
      EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
  }
}

TEST(SamplingDistribution, TopPKeepsTheSmallestSetReachingP) {
  const auto logits = fixed_logits();
  const double z = 1.00001;  // the normaliser of the six probabilities
  // p = 0.75: 0.50 + 0.20 = 0.70 < 0.75, + 0.15 = 0.85 >= 0.75: tokens 1, 3, 4.
  expect_probs(distribution(logits, {1.0, 0, 0.75}),
               {0, 0.50 / 0.85, 0, 0.20 / 0.85, 0.15 / 0.85, 0});
  // p = 0.5 * 0.99: the single most likely token already reaches it.
  expect_probs(distribution(logits, {1.0, 0, 0.495}), {0, 1, 0, 0, 0, 0});
  // p = 0.9: 0.85 < 0.9, + 0.10 = 0.95: four tokens.
  expect_probs(distribution(logits, {1.0, 0, 0.9}),
               {0.10 / 0.95, 0.50 / 0.95, 0, 0.20 / 0.95, 0.15 / 0.95, 0});
  // p = 1: everything, renormalised.
  expect_probs(distribution(logits, {1.0, 0, 1.0}),
               {0.10 / z, 0.50 / z, 0.05 / z, 0.20 / z, 0.15 / z, 0.00001 / z});
}

TEST(SamplingDistribution, TopKKeepsTheKMostLikely) {
  const auto logits = fixed_logits();
  expect_probs(distribution(logits, {1.0, 2, 1.0}), {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0, 0});
  // top-k first, then top-p on the renormalised k (as Hugging Face chains its warpers): of
  // {0.5, 0.2, 0.15} / 0.85, the first two make 0.824, so p = 0.8 keeps two and p = 0.85 three.
  expect_probs(distribution(logits, {1.0, 3, 0.8}), {0, 0.5 / 0.7, 0, 0.2 / 0.7, 0, 0});
  expect_probs(distribution(logits, {1.0, 3, 0.85}),
               {0, 0.50 / 0.85, 0, 0.20 / 0.85, 0.15 / 0.85, 0});
  // k larger than the vocabulary keeps everything.
  EXPECT_EQ(distribution(logits, {1.0, 100, 1.0}), distribution(logits, {1.0, 0, 1.0}));
}

TEST(SamplingDistribution, TemperatureDividesTheLogits) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f};
  for (double t : {0.5, 1.0, 2.0}) {
    const double z = std::exp(1.0 / t) + std::exp(2.0 / t) + std::exp(0.5 / t);
    expect_probs(distribution(logits, {t, 0, 1.0}),
                 {std::exp(1.0 / t) / z, std::exp(2.0 / t) / z, std::exp(0.5 / t) / z});
  }
}

TEST(Sampling, GreedyTakesTheLowestIdOfEqualMaxima) {
  EXPECT_EQ(infer::argmax(std::vector<float>{1, 3, 2, 3}), 1);
  infer::TokenSampler greedy({0.0, 0, 1.0}, 1), top1({1.0, 1, 1.0}, 1);
  const std::vector<float> tie = {0, 5, 5, 1};
  EXPECT_EQ(greedy.next(tie), 1);
  EXPECT_EQ(top1.next(tie), 1);
}

TEST(Sampling, DrawsFollowTheNucleusDistribution) {
  const auto logits = fixed_logits();
  const SamplingOptions o{1.0, 0, 0.75};
  const auto want = distribution(logits, o);
  infer::TokenSampler s(o, 42);
  const int draws = 40000;
  std::vector<int> count(logits.size());
  for (int i = 0; i < draws; ++i) ++count[size_t(s.next(logits))];
  for (size_t v = 0; v < logits.size(); ++v) {
    if (want[v] == 0.0) {
      EXPECT_EQ(count[v], 0) << "token " << v << " is outside the nucleus";
      continue;
    }
    const double sd = std::sqrt(draws * want[v] * (1 - want[v]));
    EXPECT_NEAR(count[v], draws * want[v], 5 * sd) << "token " << v;
  }
}

TEST(Sampling, SameSeedSameDrawsOtherSeedOtherDraws) {
  std::vector<float> logits(1000, 0.0f);  // uniform over 1000 tokens
  auto draw = [&](uint64_t seed) {
    infer::TokenSampler s({1.0, 0, 1.0}, seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(s.next(logits));
    return out;
  };
  EXPECT_EQ(draw(3), draw(3));
  EXPECT_NE(draw(3), draw(4));
}

TEST(Sampling, OutOfRangeOptionsAreUserErrors) {
  EXPECT_THROW(infer::check_sampling_options({-1.0, 0, 1.0}), UserError);
  EXPECT_THROW(infer::check_sampling_options({1.0, -2, 1.0}), UserError);
  EXPECT_THROW(infer::check_sampling_options({1.0, 0, 0.0}), UserError);
  EXPECT_THROW(infer::check_sampling_options({1.0, 0, 1.5}), UserError);
  EXPECT_NO_THROW(infer::check_sampling_options({0.0, 0, 1.0}));
}

}  // namespace
}  // namespace mds
