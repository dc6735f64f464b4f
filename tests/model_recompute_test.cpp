// Activation recomputation (model/recompute.h): which blocks a plan checkpoints; that every
// plan gives bitwise the gradients of a model that keeps everything, for the whole model and
// for pipeline stages with several micro-batches in flight; and that the memory it keeps is
// what the banner computes, and less than without it. TP and SP: tests/e2e/recompute.sh.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "mds/model/llama.h"
#include "mds/parallel/pipeline_schedule.h"
#include "mds/train/memory_report.h"
#include "model_test_util.h"

using namespace mds;
using model::BatchShape;
using model::LlamaConfig;
using model::LlamaModel;
using model::ModelShard;
using model::Recompute;
using model::RecomputeGranularity;
using model::RecomputeMethod;
using model::RecomputePlan;

namespace {

Recompute full(RecomputeMethod method, int64_t layers) {
  return {RecomputeGranularity::full, method, layers};
}
const Recompute kSelective{RecomputeGranularity::selective, RecomputeMethod::uniform, 1};

LlamaConfig config(int64_t layers) {
  LlamaConfig c;
  c.num_layers = layers;
  c.hidden_size = 32;
  c.ffn_hidden_size = 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 16;
  c.vocab_size = 100;
  c.init_method_std = 0.1f;
  c.finalize(128);
  return c;
}

// Every plan the tests compare with keeping everything, on a model of 5 layers.
std::vector<Recompute> plans() {
  return {full(RecomputeMethod::uniform, 1), full(RecomputeMethod::uniform, 2),
          full(RecomputeMethod::uniform, 5), full(RecomputeMethod::block, 1),
          full(RecomputeMethod::block, 3),   kSelective};
}

// Gradients after `slots` micro-batches run as a pipeline stage: all forwards, then the
// backwards in order (the 1F1B schedule's widest case), and the stage's input gradient.
struct StageRun {
  std::vector<float> grads, d_input;
  std::vector<double> losses;
};
StageRun run_stage(const LlamaConfig& c, const ModelShard& shard, const Recompute& r, int slots) {
  LlamaModel m(c, shard, {}, r);
  m.init_weights(3);
  m.zero_grads();
  const BatchShape shape{2, c.seq_length, 0};
  const int64_t n = shape.n(), h = c.hidden_size;
  m.prepare(shape, slots);
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<float>> inputs;
  for (int k = 0; k < slots; ++k) {
    ids.push_back(test::random_ids(n, c.vocab_size, 11 + k));
    std::vector<float> x(n * h);
    std::mt19937 gen(100 + k);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (float& v : x) v = normal(gen);
    inputs.push_back(std::move(x));
  }
  StageRun out;
  for (int k = 0; k < slots; ++k) m.forward(k, ids[k].data(), inputs[k].data());
  std::vector<float> d_output(n * h, 0.01f);
  for (int k = 0; k < slots; ++k) {
    if (shard.head) out.losses.push_back(m.loss_and_grad(k, ids[k].data(), 0.5f));
    const float* dx = m.backward(k, shard.head ? nullptr : d_output.data());
    if (!shard.embedding) out.d_input.insert(out.d_input.end(), dx, dx + n * h);
  }
  out.grads = m.grads().to_host();
  return out;
}

}  // namespace

TEST(RecomputePlan, UniformChunksKeepOnlyTheirInput) {
  const RecomputePlan p(full(RecomputeMethod::uniform, 2), 5);  // chunks [0,2) [2,4) [4,5)
  EXPECT_EQ(p.checkpointed_layers(), 5);
  EXPECT_EQ(p.max_chunk(), 2);
  const std::vector<int64_t> begin = {0, 0, 2, 2, 4}, end = {2, 2, 4, 4, 5};
  for (int64_t l = 0; l < 5; ++l) {
    EXPECT_TRUE(p.checkpointed(l));
    EXPECT_EQ(p.chunk_begin(l), begin[l]) << l;
    EXPECT_EQ(p.chunk_end(l), end[l]) << l;
  }
  const std::vector<bool> keeps = {true, false, true, false, true, true};  // l = 0..5
  for (int64_t l = 0; l <= 5; ++l) EXPECT_EQ(p.keeps_input(l), keeps[l]) << l;
}

TEST(RecomputePlan, BlockCheckpointsTheFirstLayersOneByOne) {
  const RecomputePlan p(full(RecomputeMethod::block, 2), 5);
  EXPECT_EQ(p.checkpointed_layers(), 2);
  EXPECT_EQ(p.max_chunk(), 1);
  for (int64_t l = 0; l < 5; ++l) {
    EXPECT_EQ(p.checkpointed(l), l < 2) << l;
    EXPECT_EQ(p.chunk_begin(l), l);
    EXPECT_EQ(p.chunk_end(l), l + 1);
  }
  for (int64_t l = 0; l <= 5; ++l) EXPECT_TRUE(p.keeps_input(l));
}

TEST(RecomputePlan, ChunksLongerThanTheStageAreTheWholeStage) {
  const RecomputePlan p(full(RecomputeMethod::uniform, 4), 3);
  EXPECT_EQ(p.max_chunk(), 3);
  EXPECT_EQ(p.chunk_end(0), 3);
  EXPECT_FALSE(p.keeps_input(2));
  const RecomputePlan block(full(RecomputeMethod::block, 4), 3);
  EXPECT_EQ(block.checkpointed_layers(), 3);
}

TEST(RecomputePlan, NoneAndSelectiveCheckpointNoBlock) {
  for (const Recompute& r : {Recompute{}, kSelective}) {
    const RecomputePlan p(r, 4);
    EXPECT_EQ(p.max_chunk(), 0);
    EXPECT_EQ(p.checkpointed_layers(), 0);
    for (int64_t l = 0; l <= 4; ++l) EXPECT_TRUE(p.keeps_input(l));
  }
}

TEST(Recompute, WholeModelGradientsAreBitwiseTheKeepEverythingOnes) {
  const LlamaConfig c = config(5);
  const StageRun want = run_stage(c, {}, {}, 1);
  for (const Recompute& r : plans()) {
    SCOPED_TRACE(r.describe());
    const StageRun got = run_stage(c, {}, r, 1);
    EXPECT_EQ(got.losses, want.losses);
    EXPECT_EQ(got.grads, want.grads);
  }
}

// Three micro-batches in flight on the first, a middle and the last of 3 stages (2+2+1 of
// 5 layers): the shared workspace must be refilled from the right slot every backward.
TEST(Recompute, PipelineStagesWithSlotsInFlightAreBitwiseTheKeepEverythingOnes) {
  const LlamaConfig c = config(5);
  for (int64_t p = 0; p < 3; ++p) {
    const ModelShard shard = ModelShard::of(c, 0, 1, p, 3);
    const StageRun want = run_stage(c, shard, {}, 3);
    for (const Recompute& r : plans()) {
      SCOPED_TRACE(testing::Message() << "stage " << p << ", " << r.describe());
      const StageRun got = run_stage(c, shard, r, 3);
      EXPECT_EQ(got.losses, want.losses);
      EXPECT_EQ(got.grads, want.grads);
      EXPECT_EQ(got.d_input, want.d_input);
    }
  }
}

TEST(Recompute, TheBannerEstimateIsWhatTheModelAllocatesAndLessThanKeepingEverything) {
  const LlamaConfig c = config(5);
  const BatchShape shape{2, c.seq_length, 0};
  for (int64_t p = 0; p < 2; ++p) {
    const ModelShard shard = ModelShard::of(c, 0, 1, p, 2);
    const int64_t slots = 2;
    const train::MemoryReport none = train::estimate_memory(c, shard, 1, shape, slots);
    for (const Recompute& r : plans()) {
      SCOPED_TRACE(testing::Message() << "stage " << p << ", " << r.describe());
      LlamaModel m(c, shard, {}, r);
      m.prepare(shape, int(slots));
      const train::MemoryReport want = train::estimate_memory(c, shard, 1, shape, slots, r);
      const train::MemoryReport got = train::measured_memory(m, want.optimizer);
      EXPECT_EQ(got.activations, want.activations);
      EXPECT_EQ(got.scratch, want.scratch);
      EXPECT_EQ(got.total(), want.total());
      EXPECT_LT(want.activations, none.activations);
      EXPECT_LT(want.total(), none.total());
    }
  }
}

// Full recomputation of every block one by one keeps, per micro-batch, only the residual
// stream at the blocks' inputs and the stage output (plus token ids / d_out).
TEST(Recompute, FullUniformOneKeepsOnlyTheResidualStreamPerMicroBatch) {
  const LlamaConfig c = config(4);
  const BatchShape shape{2, c.seq_length, 0};
  const int64_t n = shape.n(), h = c.hidden_size, L = 4, slots = 3;
  const ModelShard middle = ModelShard::of(c, 0, 1, 1, 3);  // layers 1..2, no embedding/head
  const int64_t layers = middle.layers(c);
  const train::MemoryReport r =
      train::estimate_memory(c, middle, 1, shape, slots, full(RecomputeMethod::uniform, 1));
  EXPECT_EQ(r.activations, slots * (layers + 1) * n * h * int64_t(sizeof(float)));
  const train::MemoryReport whole =
      train::estimate_memory(c, {}, 1, shape, 1, full(RecomputeMethod::uniform, 1));
  EXPECT_EQ(whole.activations,
            ((L + 1) * n * h + n * h) * int64_t(sizeof(float)) + n * int64_t(sizeof(int32_t)));
}
