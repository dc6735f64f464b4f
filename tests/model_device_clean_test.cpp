// The model code touches its buffers only through its backend (ops/backend.h), as it must for
// them to live on a GPU: everything runs on a GuardedBackend (tests/guarded_backend.h), whose
// memory is inaccessible outside its own calls, and gives bitwise the CPU backend's results
// (the same kernels). Forward and backward of the whole model and of pipeline stages, with
// activation recomputation, evaluation, the AdamW step and the gradient norms.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "guarded_backend.h"
#include "mds/dist/mpi_communicator.h"
#include "mds/model/llama.h"
#include "mds/optim/adamw.h"
#include "mds/parallel/grad_sync.h"
#include "model_test_util.h"

namespace mds {
namespace {

using model::LlamaConfig;
using model::LlamaModel;
using model::ModelShard;
using model::Recompute;
using model::RecomputeGranularity;
using model::RecomputeMethod;

LlamaConfig config() {
  LlamaConfig c;
  c.num_layers = 3;
  c.hidden_size = 32;
  c.ffn_hidden_size = 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 16;
  c.vocab_size = 300;  // padded to 384
  c.init_method_std = 0.05f;
  c.finalize(128);
  return c;
}

struct Results {
  double loss = 0, eval = 0, norm = 0, sharded_norm = 0;
  std::vector<float> grads, params_after_step;
};

// Two training steps of the whole model (the second after an AdamW step), on `backend`.
Results train_whole(ops::Backend& backend, const Recompute& r) {
  const LlamaConfig c = config();
  const int64_t b = 2, s = c.seq_length;
  const auto tokens = test::random_ids(b * s, c.vocab_size, 1),
             targets = test::random_ids(b * s, c.vocab_size, 2);
  LlamaModel m(c, {}, {}, r, backend);
  optim::AdamW opt(m.table(), {}, backend);
  m.init_weights(7);
  Results out;
  for (int step = 0; step < 2; ++step) {
    m.zero_grads();
    out.loss = m.forward_backward(tokens.data(), targets.data(), b, s, 1.0f);
    out.norm = opt.step(m.params().data(), m.grads().data(), 1e-3);
  }
  auto self = dist::make_self_communicator();
  out.sharded_norm =
      parallel::sharded_grad_norm(m.table(), m.grads().data(), 0, *self, *self, backend);
  out.eval = m.forward_loss(tokens.data(), targets.data(), b, s);
  out.grads = m.grads().to_host();
  out.params_after_step = m.params().to_host();
  return out;
}

// A middle pipeline stage with three micro-batches in flight: the input gradients it returns.
std::vector<float> run_middle_stage(ops::Backend& backend, const Recompute& r) {
  const LlamaConfig c = config();
  const ModelShard middle = ModelShard::of(c, 0, 1, 1, 3);
  const model::BatchShape shape{2, c.seq_length, 0};
  const int64_t nh = shape.n() * c.hidden_size;
  LlamaModel m(c, middle, {}, r, backend);
  m.init_weights(3);
  m.zero_grads();
  m.prepare(shape, 3);
  std::mt19937 gen(5);
  std::normal_distribution<float> normal;
  std::vector<float> host(static_cast<size_t>(nh));
  Buffer<float> x(backend, nh), d(backend, nh);
  for (int k = 0; k < 3; ++k) {
    for (float& v : host) v = normal(gen);
    x.upload(host.data(), nh);
    m.forward(k, nullptr, x.data());  // copied into the slot
  }
  for (float& v : host) v = 0.01f * normal(gen);
  d.upload(host.data(), nh);
  std::vector<float> out;
  for (int k = 0; k < 3; ++k) {
    std::vector<float> dx(static_cast<size_t>(nh));
    backend.download(dx.data(), m.backward(k, d.data()), dx.size() * sizeof(float));
    out.insert(out.end(), dx.begin(), dx.end());
  }
  const std::vector<float> g = m.grads().to_host();
  out.insert(out.end(), g.begin(), g.end());
  return out;
}

const Recompute kPlans[] = {
    {},
    {RecomputeGranularity::full, RecomputeMethod::uniform, 2},
    {RecomputeGranularity::full, RecomputeMethod::block, 1},
    {RecomputeGranularity::selective, RecomputeMethod::uniform, 1},
};

TEST(ModelDeviceClean, TrainingStepsTouchMemoryOnlyThroughTheBackend) {
  for (const Recompute& r : kPlans) {
    SCOPED_TRACE(r.describe());
    test::GuardedBackend guarded;
    const Results got = train_whole(guarded, r);
    const Results want = train_whole(ops::cpu_backend(), r);
    EXPECT_EQ(got.loss, want.loss);
    EXPECT_EQ(got.eval, want.eval);
    EXPECT_EQ(got.norm, want.norm);
    EXPECT_EQ(got.sharded_norm, want.sharded_norm);
    EXPECT_EQ(got.grads, want.grads);
    EXPECT_EQ(got.params_after_step, want.params_after_step);
  }
}

TEST(ModelDeviceClean, PipelineStagesTouchMemoryOnlyThroughTheBackend) {
  for (const Recompute& r : kPlans) {
    SCOPED_TRACE(r.describe());
    test::GuardedBackend guarded;
    EXPECT_EQ(run_middle_stage(guarded, r), run_middle_stage(ops::cpu_backend(), r));
  }
}

// The guard itself: a host read of a buffer's memory faults.
TEST(ModelDeviceCleanDeathTest, AHostReadOfAGuardedBufferCrashes) {
  test::GuardedBackend guarded;
  Buffer<float> b(guarded, 16);
  b.zero();  // through the backend: fine
  EXPECT_DEATH(
      {
        volatile float v = b.data()[3];
        (void)v;
      },
      "");
}

}  // namespace
}  // namespace mds
