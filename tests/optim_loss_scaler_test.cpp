// fp16's loss scaler against Megatron's DynamicGradScaler rule, step by step, and the AdamW
// step on scaled gradients against the step on the gradients themselves.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mds/model/params.h"
#include "mds/optim/adamw.h"
#include "mds/optim/loss_scaler.h"

using namespace mds::optim;

namespace {

LossScalerOptions dynamic(double initial, double min, int64_t window, int64_t hysteresis) {
  return {.loss_scale = 0,
          .initial_scale = initial,
          .min_scale = min,
          .window = window,
          .hysteresis = hysteresis};
}

}  // namespace

TEST(LossScaler, DefaultsAreMegatrons) {
  const LossScalerOptions o;
  EXPECT_EQ(o.initial_scale, 4294967296.0);  // 2^32
  EXPECT_EQ(o.min_scale, 1.0);
  EXPECT_EQ(o.window, 1000);
  EXPECT_EQ(o.hysteresis, 2);
  const LossScaler s(o);
  EXPECT_TRUE(s.dynamic());
  EXPECT_EQ(s.scale(), 4294967296.0);
}

// Hysteresis 2: the first overflow only uses up the hysteresis; each further one (with no
// window of clean steps between to refill it) halves the scale.
TEST(LossScaler, OverflowsHalveTheScaleOnceTheHysteresisIsUsedUp) {
  LossScaler s(dynamic(1024, 1, 1000, 2));
  s.update(true);
  EXPECT_EQ(s.scale(), 1024);
  s.update(true);
  EXPECT_EQ(s.scale(), 512);
  s.update(true);
  EXPECT_EQ(s.scale(), 256);
  s.update(false);  // a clean step does not refill the hysteresis...
  s.update(true);
  EXPECT_EQ(s.scale(), 128);  // ...so the next overflow halves at once
  EXPECT_EQ(s.state().growth_tracker, 0);
}

TEST(LossScaler, AWindowOfCleanStepsDoublesTheScaleAndRefillsTheHysteresis) {
  LossScaler s(dynamic(8, 1, 3, 2));
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.scale(), 4);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 4);
  s.update(false);  // the third clean step in a row
  EXPECT_EQ(s.scale(), 8);
  EXPECT_EQ(s.state().growth_tracker, 0);
  EXPECT_EQ(s.state().hysteresis_tracker, 2);
  s.update(true);  // hysteresis again: no change
  EXPECT_EQ(s.scale(), 8);
  s.update(false);
  s.update(false);
  s.update(true);  // an overflow restarts the window
  EXPECT_EQ(s.scale(), 4);
  s.update(false);
  s.update(false);
  EXPECT_EQ(s.scale(), 4);
  s.update(false);
  EXPECT_EQ(s.scale(), 8);
}

TEST(LossScaler, NeverGoesBelowTheMinimum) {
  LossScaler s(dynamic(4, 2, 1000, 1));
  for (int i = 0; i < 5; ++i) s.update(true);
  EXPECT_EQ(s.scale(), 2);
}

// The rule of megatron/optimizer/grad_scaler.py, written out again, driven by a fixed pattern
// of overflows: the two must agree at every step.
TEST(LossScaler, FollowsMegatronsRuleOverALongPattern) {
  const int64_t window = 5, hysteresis = 3;
  LossScaler s(dynamic(65536, 1, window, hysteresis));
  double scale = 65536;
  int64_t growth = 0, hyst = hysteresis;
  for (int i = 0; i < 200; ++i) {
    const bool inf = (i * 7919) % 11 < 3;  // irregular, about 27% overflows
    s.update(inf);
    if (inf) {
      growth = 0;
      hyst -= 1;
      if (hyst <= 0) scale = std::max(scale * 0.5, 1.0);
    } else if (++growth == window) {
      growth = 0;
      hyst = hysteresis;
      scale *= 2;
    }
    ASSERT_EQ(s.scale(), scale) << "step " << i;
    ASSERT_EQ(s.state().growth_tracker, growth) << "step " << i;
    ASSERT_EQ(s.state().hysteresis_tracker, hyst) << "step " << i;
  }
}

TEST(LossScaler, AConstantScaleNeverChanges) {
  LossScaler s({.loss_scale = 128});
  EXPECT_FALSE(s.dynamic());
  for (int i = 0; i < 10; ++i) s.update(i % 2 == 0);
  EXPECT_EQ(s.scale(), 128);
}

TEST(LossScaler, RestoresItsState) {
  LossScaler a(dynamic(1024, 1, 4, 2)), b(dynamic(1024, 1, 4, 2));
  for (bool inf : {true, true, false, false}) a.update(inf);
  b.restore(a.state());
  for (bool inf : {false, false, true, true, false}) {
    a.update(inf);
    b.update(inf);
    ASSERT_EQ(a.scale(), b.scale());
  }
}

// Gradients scaled by a power of two S, stepped with unscale = 1/S, give bitwise the step on
// the gradients themselves (with clipping active: the norm given is the unscaled one).
TEST(AdamW, AStepOnScaledGradientsWithUnscaleIsTheUnscaledStep) {
  mds::model::LlamaConfig c;
  c.num_layers = 1;
  c.hidden_size = 8;
  c.num_attention_heads = 2;
  c.ffn_hidden_size = 16;
  c.seq_length = 4;
  c.vocab_size = 32;
  c.finalize(1, 1);
  const mds::model::ParamTable table(c);
  const int64_t n = table.total();
  std::vector<float> p(static_cast<size_t>(n)), g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    p[size_t(i)] = 0.01f * float((i * 37) % 101 - 50);
    g[size_t(i)] = 0.003f * float((i * 53) % 97 - 48);
  }
  const double S = 65536;
  std::vector<float> gs(g);
  for (float& v : gs) v *= float(S);
  double norm = 0;
  for (float v : g) norm += double(v) * v;
  norm = std::sqrt(norm);
  ASSERT_GT(norm, 1.0);  // clipping (clip_grad 1) takes part

  AdamWOptions o;
  AdamW plain(table, o), scaled(table, o);
  std::vector<float> p1(p), p2(p);
  for (int step = 0; step < 3; ++step) {
    plain.step(p1.data(), g.data(), 1e-3, norm);
    scaled.step(p2.data(), gs.data(), 1e-3, norm, 1.0 / S);
  }
  EXPECT_EQ(p1, p2);
}
