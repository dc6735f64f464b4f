// The whole model in bf16 (Megatron's mixed precision) through the CPU backend's bf16
// reference kernels: its loss and gradients against the fp32 model on the same (bf16-rounded)
// weights, and its memory against the banner's bf16 estimate, byte for byte.
#include <gtest/gtest.h>

#include <vector>

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

TEST(ModelBf16, LossAndGradientsStayWithinBf16RoundingOfFp32) {
  const LlamaConfig c = config();
  const int64_t b = 2, s = c.seq_length;
  const auto tokens = test::random_ids(b * s, c.vocab_size, 1),
             targets = test::random_ids(b * s, c.vocab_size, 2);
  LlamaModelT<bf16> half(c);
  half.init_weights(5);
  // The fp32 model on exactly the bf16 weights.
  LlamaModelT<float> full(c);
  const std::vector<bf16> w = half.params().to_host();
  std::vector<float> w32(w.size());
  for (size_t i = 0; i < w.size(); ++i) w32[i] = float(w[i]);
  full.params().upload(w32.data(), int64_t(w32.size()));
  half.zero_grads();
  full.zero_grads();
  const double got = half.forward_backward(tokens.data(), targets.data(), b, s, 1.0f);
  const double want = full.forward_backward(tokens.data(), targets.data(), b, s, 1.0f);
  EXPECT_NEAR(got, want, 1e-3 * want);  // measured 1.8e-5 (2026-12-01)
  const std::vector<float> g = half.grads().to_host(), g32 = full.grads().to_host();
  for (const model::ParamInfo& p : full.table().params())
    EXPECT_LT(test::rel_l2(g.data() + p.offset, g32.data() + p.offset, p.numel), 3e-2)
        << p.name;  // measured 4.6e-3 to 8.6e-3 per tensor
  EXPECT_NEAR(half.forward_loss(tokens.data(), targets.data(), b, s),
              full.forward_loss(tokens.data(), targets.data(), b, s), 1e-3 * want);
}

TEST(ModelBf16, TheBannerEstimateIsWhatTheBf16ModelAndOptimizerAllocate) {
  const LlamaConfig c = config();
  for (int64_t p = 0; p < 2; ++p) {
    SCOPED_TRACE(p);
    ops::CpuBackend backend;
    const ModelShard shard = ModelShard::of(c, 0, 1, p, 2);
    const BatchShape shape{2, c.seq_length, 0};
    const int slots = int(parallel::pipeline_slots(p, 2, 3));
    const train::MemoryReport want =
        train::estimate_memory(c, shard, 1, shape, slots, {}, model::Precision::bf16);
    LlamaModelT<bf16> m(c, shard, {}, {}, backend);
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
