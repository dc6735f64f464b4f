// AdamW kernel: steps 1 and 3 against the update computed by hand in double, and against
// torch.optim.AdamW (torch 1.13) values recorded for the same inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "mds/ops/ops.h"
#include "ops_test_util.h"

namespace mds {
namespace {

constexpr float kLr = 1e-2f, kB1 = 0.9f, kB2 = 0.95f, kEps = 1e-8f, kWd = 0.1f, kScale = 0.5f;

const std::vector<float> kP0 = {0.5f, -1.0f, 2.0f, 0.0f, 1e-3f};
const std::vector<float> kG = {0.1f, -0.2f, 0.0f, 3.0f, -1e-4f};  // step t uses t * kG

struct State {
  std::vector<double> p, m, v;
};

// Three lines of the AdamW paper's algorithm (decoupled decay), in double.
void hand_step(State& s, int64_t t) {
  for (size_t i = 0; i < s.p.size(); ++i) {
    const double g = static_cast<double>(kG[i]) * t * kScale;
    s.p[i] *= 1.0 - static_cast<double>(kLr) * kWd;
    s.m[i] = kB1 * s.m[i] + (1.0 - kB1) * g;
    s.v[i] = kB2 * s.v[i] + (1.0 - kB2) * g * g;
    const double mhat = s.m[i] / (1.0 - std::pow(static_cast<double>(kB1), t));
    const double vhat = s.v[i] / (1.0 - std::pow(static_cast<double>(kB2), t));
    s.p[i] -= kLr * mhat / (std::sqrt(vhat) + kEps);
  }
}

TEST(AdamW, StepsOneAndThreeMatchHandComputedUpdate) {
  std::vector<float> p = kP0, m(kP0.size(), 0.0f), v(kP0.size(), 0.0f);
  State ref{test::to_double(kP0), std::vector<double>(kP0.size()), std::vector<double>(kP0.size())};
  for (int64_t t = 1; t <= 3; ++t) {
    std::vector<float> g(kG.size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = kG[i] * static_cast<float>(t);
    ops::adamw_step(p.data(), g.data(), m.data(), v.data(), static_cast<int64_t>(p.size()), kLr,
                    kB1, kB2, kEps, kWd, t, kScale);
    hand_step(ref, t);
    if (t == 1) {  // m_hat / sqrt(v_hat) = sign(g) at step 1: p[3] = 0 moves by exactly -lr
      EXPECT_NEAR(p[3], -kLr, 1e-9);
    }
    if (t == 1 || t == 3) {
      EXPECT_TRUE(test::all_close(p, ref.p, 1e-6, 1e-7)) << "step " << t;
      EXPECT_TRUE(test::all_close(m, ref.m, 1e-6, 1e-7)) << "step " << t;
      EXPECT_TRUE(test::all_close(v, ref.v, 1e-6, 1e-7)) << "step " << t;
    }
  }
}

TEST(AdamW, ThreeStepsMatchTorch) {
  // torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1), grads
  // t * kG * 0.5 at steps t = 1, 2, 3 (torch 1.13.1, CPU, float32).
  const std::vector<double> torch_p3 = {0x1.e0c636p-2, -0x1.ef9eb6p-1, 0x1.fe773p+0, -0x1.db0f78p-6,
                                        0x1.eb542cp-6};
  std::vector<float> p = kP0, m(kP0.size(), 0.0f), v(kP0.size(), 0.0f);
  for (int64_t t = 1; t <= 3; ++t) {
    std::vector<float> g(kG.size());
    for (size_t i = 0; i < g.size(); ++i) g[i] = kG[i] * static_cast<float>(t);
    ops::adamw_step(p.data(), g.data(), m.data(), v.data(), static_cast<int64_t>(p.size()), kLr,
                    kB1, kB2, kEps, kWd, t, kScale);
  }
  EXPECT_TRUE(test::all_close(p, torch_p3, 4e-7, 0));  // a couple of fp32 ulps
}

}  // namespace
}  // namespace mds
