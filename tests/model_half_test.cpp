// The whole model in 16-bit storage H = bf16 and fp16 (Megatron's mixed precision, --bf16 and
// --fp16) through the CPU backend's 16-bit reference kernels: its loss and gradients against the
// fp32 model on the same (H-rounded) weights, at tolerances proportional to H's unit roundoff,
// and its memory against the banner's estimate for H, byte for byte; and, where the two differ,
// fp16's narrow range: without a loss scale its gradients underflow or overflow.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "half_test_util.h"
#include "mds/model/llama.h"
#include "mds/ops/cpu/cpu_backend.h"
#include "mds/optim/adamw.h"
#include "mds/parallel/pipeline_schedule.h"
#include "mds/train/memory_report.h"
#include "model_test_util.h"

namespace mds {
namespace {

using model::BatchShape;
using model::LlamaConfig;
using model::LlamaModelT;
using model::ModelShard;

LlamaConfig config() {
  LlamaConfig c;
  c.num_layers = 2;
  c.hidden_size = 64;
  c.ffn_hidden_size = 96;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 32;
  c.vocab_size = 300;
  c.init_method_std = 0.05f;
  c.finalize(128);
  return c;
}

template <typename H>
class ModelHalf : public ::testing::Test {};
TYPED_TEST_SUITE(ModelHalf, test::HalfTypes, test::HalfTypeName);

// One forward-backward of the H model and of the fp32 model on exactly its weights, with the
// gradients of loss_weight x the mean loss (an fp16 run's loss weight carries the loss scale).
struct Comparison {
  double loss = 0, loss32 = 0, eval = 0, eval32 = 0;
  std::vector<std::pair<std::string, double>> grad_errors;  // relative L2, per tensor
  bool grads_finite = true;
};

template <typename H>
Comparison against_fp32(float loss_weight) {
  const LlamaConfig c = config();
  const int64_t b = 2, s = c.seq_length;
  const auto tokens = test::random_ids(b * s, c.vocab_size, 1),
             targets = test::random_ids(b * s, c.vocab_size, 2);
  LlamaModelT<H> half(c);
  half.init_weights(5);
  LlamaModelT<float> full(c);
  const std::vector<H> w = half.params().to_host();
  std::vector<float> w32(w.size());
  for (size_t i = 0; i < w.size(); ++i) w32[i] = float(w[i]);
  full.params().upload(w32.data(), int64_t(w32.size()));
  half.zero_grads();
  full.zero_grads();
  Comparison out;
  out.loss = half.forward_backward(tokens.data(), targets.data(), b, s, loss_weight);
  out.loss32 = full.forward_backward(tokens.data(), targets.data(), b, s, loss_weight);
  const std::vector<float> g = half.grads().to_host(), g32 = full.grads().to_host();
  for (const model::ParamInfo& p : full.table().params())
    out.grad_errors.emplace_back(p.name,
                                 test::rel_l2(g.data() + p.offset, g32.data() + p.offset, p.numel));
  out.grads_finite = std::all_of(g.begin(), g.end(), [](float v) { return std::isfinite(v); });
  out.eval = half.forward_loss(tokens.data(), targets.data(), b, s);
  out.eval32 = full.forward_loss(tokens.data(), targets.data(), b, s);
  return out;
}

// Loss within u/4 relative, each gradient tensor within 8u relative L2 (u: H's unit roundoff).
// Measured: loss bf16 1.8e-5 (0.005u), fp16 1.1e-7 (0.0002u); gradients bf16 4.6e-3 to 8.6e-3
// (1.2u to 2.2u), fp16 5.5e-4 to 1.1e-3 (1.1u to 2.3u).
TYPED_TEST(ModelHalf, LossAndGradientsStayWithinHalfRoundingOfFp32) {
  using H = TypeParam;
  const double u = test::unit_roundoff<H>();
  const Comparison r = against_fp32<H>(1.0f);
  EXPECT_NEAR(r.loss, r.loss32, u / 4 * r.loss32);
  for (const auto& [name, err] : r.grad_errors) EXPECT_LT(err, 8 * u) << name;
  EXPECT_NEAR(r.eval, r.eval32, u / 4 * r.loss32);
}

// fp16's narrow range, which bf16 (fp32's exponent range) does not have: why --fp16 scales the
// loss (optim/loss_scaler.h). At a loss weight of 2^-14 activation gradients fall below fp16's
// subnormals and weight gradients are lost; at 2^20 they pass 65504 and turn inf and NaN, the
// overflow the scaler backs off from; in between (2^10) the scaled gradients keep their
// precision. bf16 stays within its tolerance at all three. Measured, the worst gradient tensor
// in fp16: 1.09 at 2^-14, 1.1e-3 at 2^10 (as at 1), inf at 2^20; in bf16 8.6e-3 at all three.
TYPED_TEST(ModelHalf, OnlyFp16GradientsUnderflowOrOverflowAtExtremeLossWeights) {
  using H = TypeParam;
  const double u = test::unit_roundoff<H>();
  constexpr bool is_fp16 = std::is_same_v<H, fp16>;
  for (const float loss_weight : {0x1p-14f, 0x1p10f, 0x1p20f}) {
    SCOPED_TRACE(loss_weight);
    const Comparison r = against_fp32<H>(loss_weight);
    EXPECT_NEAR(r.loss, r.loss32, u / 4 * r.loss32);  // the forward does not see the weight
    double worst = 0;
    for (const auto& [name, err] : r.grad_errors)
      if (!(err <= worst)) worst = err;  // a NaN too
    const bool overflow = is_fp16 && loss_weight > 0x1p16f, underflow = is_fp16 && loss_weight < 1;
    EXPECT_EQ(r.grads_finite, !overflow);
    if (underflow) {
      EXPECT_GT(worst, 8 * u);
    } else if (!overflow) {
      EXPECT_LT(worst, 8 * u);
    }
  }
}

TYPED_TEST(ModelHalf, TheBannerEstimateIsWhatTheHalfModelAndOptimizerAllocate) {
  using H = TypeParam;
  const LlamaConfig c = config();
  for (int64_t p = 0; p < 2; ++p) {
    SCOPED_TRACE(p);
    ops::CpuBackend backend;
    const ModelShard shard = ModelShard::of(c, 0, 1, p, 2);
    const BatchShape shape{2, c.seq_length, 0};
    const int slots = int(parallel::pipeline_slots(p, 2, 3));
    const train::MemoryReport want =
        train::estimate_memory(c, shard, 1, shape, slots, {}, test::precision_of<H>());
    LlamaModelT<H> m(c, shard, {}, {}, backend);
    optim::AdamW opt(m.table(), {}, backend);
    m.init_weights(1);
    opt.init_master(m.params().data());
    m.prepare(shape, slots);
    const int64_t opt_bytes = opt.allocated_bytes();
    const train::MemoryReport got = train::measured_memory(m, opt_bytes);
    test::expect_same_memory(got, want);
    EXPECT_EQ(backend.memory_stats().current, want.total());
  }
}

}  // namespace
}  // namespace mds
