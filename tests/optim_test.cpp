// Megatron's LR schedule against hand-computed values; AdamW's weight-decay groups, clipping
// and convergence on a toy problem; its mixed-precision steps for bf16 and fp16 weights.
#include <gtest/gtest.h>

#include <cmath>

#include "half_test_util.h"
#include "mds/core/error.h"
#include "mds/model/params.h"
#include "mds/optim/adamw.h"
#include "mds/optim/lr_schedule.h"

using namespace mds::optim;

TEST(LRSchedule, WarmsUpLinearlyThenDecaysByCosineToMinLr) {
  LRSchedule s({.max_lr = 1e-3,
                .min_lr = 1e-4,
                .style = DecayStyle::cosine,
                .warmup_samples = 100,
                .decay_samples = 1100});
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr_at(50), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(100), 1e-3);
  EXPECT_NEAR(s.lr_at(600), 1e-4 + 0.9e-3 * 0.5, 1e-15);  // halfway: cos(pi/2) = 0
  EXPECT_NEAR(s.lr_at(350), 1e-4 + 0.9e-3 * 0.5 * (std::cos(M_PI * 0.25) + 1), 1e-15);
  EXPECT_DOUBLE_EQ(s.lr_at(1100), 1e-4);
  EXPECT_DOUBLE_EQ(s.lr_at(5000), 1e-4);
}

TEST(LRSchedule, LinearAndConstantStyles) {
  LRSchedule lin({.max_lr = 2.0,
                  .min_lr = 0.0,
                  .style = DecayStyle::linear,
                  .warmup_samples = 0,
                  .decay_samples = 10});
  EXPECT_DOUBLE_EQ(lin.lr_at(0), 2.0);
  EXPECT_DOUBLE_EQ(lin.lr_at(5), 1.0);
  EXPECT_DOUBLE_EQ(lin.lr_at(10), 0.0);
  LRSchedule con({.max_lr = 3.0,
                  .min_lr = 0.0,
                  .style = DecayStyle::constant,
                  .warmup_samples = 4,
                  .decay_samples = 10});
  EXPECT_DOUBLE_EQ(con.lr_at(2), 1.5);
  EXPECT_DOUBLE_EQ(con.lr_at(9), 3.0);
  EXPECT_DOUBLE_EQ(con.lr_at(99), 3.0);
}

TEST(LRSchedule, StepsInSamplesAndRejectsBadSettings) {
  LRSchedule s({.max_lr = 1.0,
                .min_lr = 0.0,
                .style = DecayStyle::linear,
                .warmup_samples = 8,
                .decay_samples = 16});
  EXPECT_EQ(s.lr(), 0.0);  // the first step of a warmed-up run uses lr 0, as Megatron's
  s.step(4);
  EXPECT_DOUBLE_EQ(s.lr(), 0.5);
  EXPECT_THROW(LRSchedule({.max_lr = 1.0, .min_lr = 2.0}), mds::UserError);
  EXPECT_THROW(LRSchedule({.max_lr = 1.0, .warmup_samples = 20, .decay_samples = 10}),
               mds::UserError);
  EXPECT_THROW(parse_decay_style("exponential"), mds::UserError);
}

TEST(AdamW, ClipCoefficientFollowsMegatron) {
  EXPECT_DOUBLE_EQ(clip_coefficient(0.5, 1.0), 1.0);
  EXPECT_NEAR(clip_coefficient(4.0, 1.0), 1.0 / (4.0 + 1e-6), 1e-15);
  EXPECT_DOUBLE_EQ(clip_coefficient(1e9, 0.0), 1.0);  // --clip-grad 0: off
  const float g[4] = {3, 0, 0, 4};
  EXPECT_DOUBLE_EQ(global_grad_norm(g, 4), 5.0);
}

namespace {
mds::model::LlamaConfig toy() {
  mds::model::LlamaConfig c;
  c.num_layers = 1;
  c.hidden_size = 8;
  c.ffn_hidden_size = 8;
  c.num_attention_heads = 2;
  c.seq_length = 4;
  c.vocab_size = 10;
  c.finalize(16);
  return c;
}
}  // namespace

TEST(AdamW, DecaysMatricesButNotNormWeights) {
  const auto c = toy();
  mds::model::ParamTable table(c);
  std::vector<float> p(table.total(), 1.0f), g(table.total(), 0.0f);
  AdamW opt(table,
            {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.1, .clip_grad = 1.0});
  opt.step(p.data(), g.data(), 0.5);
  for (const auto& info : table.params())
    EXPECT_FLOAT_EQ(p[info.offset], info.decay ? 1.0f - 0.5f * 0.1f : 1.0f) << info.name;
}

TEST(AdamW, ClippedStepEqualsStepOnScaledGradients) {
  const auto c = toy();
  mds::model::ParamTable table(c);
  const int64_t n = table.total();
  std::vector<float> g(n), g_small(n);
  for (int64_t i = 0; i < n; ++i) g[i] = float((i % 7) - 3) * 0.5f;
  const double norm = global_grad_norm(g.data(), n);
  for (int64_t i = 0; i < n; ++i) g_small[i] = float(g[i] * clip_coefficient(norm, 1.0));
  std::vector<float> p1(n, 0.25f), p2(n, 0.25f);
  // eps large enough that Adam's update depends on the gradient scale.
  AdamWOptions o{.beta1 = 0.9, .beta2 = 0.99, .eps = 0.1, .weight_decay = 0.0, .clip_grad = 1.0};
  AdamW clipped(table, o);
  o.clip_grad = 0.0;
  AdamW plain(table, o);
  EXPECT_NEAR(clipped.step(p1.data(), g.data(), 0.1), norm, 1e-9);
  plain.step(p2.data(), g_small.data(), 0.1);
  for (int64_t i = 0; i < n; ++i) ASSERT_NEAR(p1[i], p2[i], 1e-6) << i;
}

TEST(AdamW, ConvergesOnAQuadratic) {
  const auto c = toy();
  mds::model::ParamTable table(c);
  const int64_t n = table.total();
  std::vector<float> p(n, 0.0f), g(n);
  auto loss = [&] {
    double l = 0;
    for (int64_t i = 0; i < n; ++i) l += (p[i] - 0.01 * (i % 13)) * (p[i] - 0.01 * (i % 13));
    return l;
  };
  AdamW opt(table,
            {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0, .clip_grad = 0.0});
  const double start = loss();
  for (int it = 0; it < 300; ++it) {
    for (int64_t i = 0; i < n; ++i) g[i] = float(2.0 * (p[i] - 0.01 * (i % 13)));
    opt.step(p.data(), g.data(), 0.01 * (1.0 - it / 300.0));
  }
  EXPECT_LT(loss(), start * 1e-3);
}

// Mixed precision (H = bf16, fp16): the master starts as fp32(H weights); each step is the fp32
// AdamW step on the master, bit for bit, and the model's H weights are the master rounded once.
template <typename H>
class AdamWMixed : public ::testing::Test {};
TYPED_TEST_SUITE(AdamWMixed, mds::test::HalfTypes, mds::test::HalfTypeName);

TYPED_TEST(AdamWMixed, StepsTheFp32MasterAndRoundsItIntoTheHalfWeights) {
  using H = TypeParam;
  const auto c = toy();
  mds::model::ParamTable table(c);
  const int64_t n = table.total();
  std::vector<H> w(n);
  std::vector<float> fp32(n), g(n);
  for (int64_t i = 0; i < n; ++i) {
    w[i] = H(0.3f + 0.01f * float(i % 13));
    fp32[i] = float(w[i]);
    g[i] = float((i % 5) - 2) * 0.25f;
  }
  const AdamWOptions o{
      .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .clip_grad = 1.0};
  AdamW mixed(table, o), plain(table, o);
  mixed.init_master(w.data());
  EXPECT_EQ(mixed.master().to_host(), fp32);
  for (int step = 0; step < 3; ++step) {
    const double norm = global_grad_norm(g.data(), n);
    mixed.step(w.data(), g.data(), 1e-2, norm);
    plain.step(fp32.data(), g.data(), 1e-2, norm);
  }
  const std::vector<float> master = mixed.master().to_host();
  EXPECT_EQ(master, fp32);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(w[i].bits, H(master[i]).bits) << i;
}
