// The start-up banner's memory per rank is computed from shapes alone (train/memory_report.h);
// these tests hold it equal, byte for byte, to the buffers a model really allocates, for the
// whole model and for every pipeline stage, after prepare() and after a training step runs
// through every slot (nothing grows). TP and SP shards: tests/mpi/memory_report_test.cpp.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "mds/model/llama.h"
#include "mds/ops/cpu/cpu_backend.h"
#include "mds/optim/adamw.h"
#include "mds/parallel/pipeline_schedule.h"
#include "mds/train/memory_report.h"
#include "model_test_util.h"

using namespace mds;
using model::BatchShape;
using model::LlamaConfig;
using model::ModelShard;
using train::MemoryReport;

namespace {

LlamaConfig config(int64_t layers) {
  LlamaConfig c;
  c.num_layers = layers;
  c.hidden_size = 32;
  c.ffn_hidden_size = 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 24;
  c.vocab_size = 300;  // padded to 384; one logits chunk of min(n, 256) rows
  c.finalize(128);
  return c;
}

// Every slot through forward, loss (last stage) and backward, as the 1F1B schedule runs them.
void run_step(model::LlamaModel& m, const BatchShape& shape, int slots) {
  const int64_t n = shape.n(), h = m.config().hidden_size;
  std::mt19937 gen(7);
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = int32_t(gen() % uint32_t(m.config().vocab_size));
  std::vector<float> input(n * h, 0.01f), d_output(n * h, 0.001f);
  for (int k = 0; k < slots; ++k) m.forward(k, ids.data(), input.data());
  for (int k = 0; k < slots; ++k) {
    if (m.shard().head) m.loss_and_grad(k, ids.data(), 1.0f / float(slots));
    m.backward(k, m.shard().head ? nullptr : d_output.data());
  }
  if (m.shard().head) m.loss(0, ids.data());  // an evaluation reuses the same buffers
}

}  // namespace

TEST(MemoryReport, WholeModelMatchesAllocatedBuffers) {
  const LlamaConfig c = config(3);
  for (int64_t micro : {1, 3, 12}) {  // 12 x 24 = 288 tokens: two logits chunks
    SCOPED_TRACE(micro);
    const BatchShape shape{micro, c.seq_length, 0};
    model::LlamaModel m(c);
    optim::AdamW opt(m.table(), {});
    m.init_weights(1);
    m.prepare(shape, 1);
    const MemoryReport want = train::estimate_memory(c, m.shard(), 1, shape, 1);
    test::expect_same_memory(train::measured_memory(m, opt.allocated_bytes()), want);
    m.zero_grads();
    run_step(m, shape, 1);
    test::expect_same_memory(train::measured_memory(m, opt.allocated_bytes()), want);
  }
}

TEST(MemoryReport, EveryPipelineStageMatchesAllocatedBuffers) {
  const LlamaConfig c = config(5);  // 5 layers over 3 stages: 2, 2, 1
  const int64_t P = 3, M = 4, micro = 2;
  const std::vector<train::StageMemory> table = train::memory_per_stage(c, 1, 1, P, micro, M);
  ASSERT_EQ(table.size(), size_t(P));
  for (int64_t p = 0; p < P; ++p) {
    SCOPED_TRACE(p);
    const ModelShard shard = ModelShard::of(c, 0, 1, p, P);
    const int slots = int(parallel::pipeline_slots(p, P, M));
    EXPECT_EQ(table[p].slots, slots);
    EXPECT_EQ(table[p].layers, shard.layers(c));
    model::LlamaModel m(c, shard);
    optim::AdamW opt(m.table(), {});
    m.init_weights(1);
    const BatchShape shape{micro, c.seq_length, 0};
    m.prepare(shape, slots);
    test::expect_same_memory(train::measured_memory(m, opt.allocated_bytes()), table[p].memory);
    m.zero_grads();
    run_step(m, shape, slots);
    test::expect_same_memory(train::measured_memory(m, opt.allocated_bytes()), table[p].memory);
  }
  // Only the first stage embeds and only the last has the head.
  EXPECT_EQ(table[0].memory.head, 0);
  EXPECT_GT(table[P - 1].memory.head, 0);
}

TEST(MemoryReport, ActivationsScaleWithSlotsAndMicroBatchAndAdamIsTwiceTheParameters) {
  const LlamaConfig c = config(2);
  const ModelShard whole;
  const MemoryReport one = train::estimate_memory(c, whole, 1, {2, c.seq_length, 0}, 1);
  const MemoryReport three = train::estimate_memory(c, whole, 1, {2, c.seq_length, 0}, 3);
  const MemoryReport wide = train::estimate_memory(c, whole, 1, {4, c.seq_length, 0}, 1);
  EXPECT_EQ(three.activations, 3 * one.activations);
  EXPECT_EQ(wide.activations, 2 * one.activations);
  EXPECT_EQ(three.head, one.head);  // shared by the slots
  EXPECT_EQ(three.scratch, one.scratch);
  EXPECT_EQ(one.optimizer, 2 * one.params);
  EXPECT_EQ(one.params, model::ParamTable(c).total() * 4);
  // The format has a row per stage and the total in MiB.
  const std::string s = train::format_memory_table(train::memory_per_stage(c, 1, 1, 2, 2, 4));
  EXPECT_NE(s.find("activations"), std::string::npos);
  EXPECT_EQ(std::count(s.begin(), s.end(), '\n'), 4) << s;
}

// Every byte the model and the optimizer hold is a Buffer of their backend, so the backend's
// peak over a whole training step (a fresh CPU backend, counting only them) is exactly the
// banner's total: nothing is allocated behind the table's back, nothing grows after prepare().
TEST(MemoryReport, ThePeakOfTheBackendIsTheBannerTotal) {
  const LlamaConfig c = config(3);
  for (int64_t p = 0; p < 2; ++p) {
    SCOPED_TRACE(p);
    ops::CpuBackend backend;
    const ModelShard shard = ModelShard::of(c, 0, 1, p, 2);
    const BatchShape shape{2, c.seq_length, 0};
    const int slots = int(parallel::pipeline_slots(p, 2, 3));
    const MemoryReport want = train::estimate_memory(c, shard, 1, shape, slots);
    {
      model::LlamaModel m(c, shard, {}, {}, backend);
      optim::AdamW opt(m.table(), {}, backend);
      m.init_weights(1);
      m.prepare(shape, slots);
      m.zero_grads();
      run_step(m, shape, slots);
      opt.step(m.params().data(), m.grads().data(), 1e-3);
      EXPECT_EQ(backend.memory_stats().current, want.total());
    }
    EXPECT_EQ(backend.memory_stats().peak, want.total());
    EXPECT_EQ(backend.memory_stats().current, 0);  // all released with the model
  }
}

// The head's logits chunk: 256 rows on the CPU; on a GPU the rows that fit in 512 MiB, a
// multiple of 256 (at GPT-2's padded vocabulary in bf16: 5120 rows, so 8192 tokens take two
// chunks, not 32, and the head's fp32 weight gradient is read and written twice, not 32 times).
TEST(HeadChunk, AGpuComputesTheLogitsInFewLargeChunks) {
  EXPECT_EQ(model::head_chunk_rows(ops::Device::cpu, 50304, 2), 256);
  EXPECT_EQ(model::head_chunk_rows(ops::Device::cuda, 50304, 2), 5120);
  EXPECT_EQ(model::head_chunk_rows(ops::Device::cuda, 50304, 4), 2560);
  EXPECT_EQ(model::head_chunk_rows(ops::Device::cuda, 128256 / 8, 2), 16640);      // 65 x 256
  EXPECT_EQ(model::head_chunk_rows(ops::Device::cuda, int64_t{1} << 30, 4), 256);  // at least 256
  // The estimate follows the device: the whole micro-batch in one chunk here.
  const LlamaConfig c = config(2);
  const ModelShard whole{0, 1, c.num_layers};
  const BatchShape shape{16, c.seq_length, 0};  // 384 tokens
  const int64_t n = shape.n(), cols = c.padded_vocab_size;
  ASSERT_GT(n, 256);
  const MemoryReport cpu = train::estimate_memory(c, whole, 1, shape, 1);
  const MemoryReport gpu =
      train::estimate_memory(c, whole, 1, shape, 1, {}, model::Precision::fp32, ops::Device::cuda);
  EXPECT_EQ(gpu.head - cpu.head, (n - 256) * (cols * 4 + 2 * 4 + 8));
}
