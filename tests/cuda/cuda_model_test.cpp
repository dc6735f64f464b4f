// The whole model on the GPU backend against the same model on the CPU backend (the fp32
// reference): one code (model/, ops/backend.h), two devices. The loss, the gradient of every
// tensor, a pipeline stage's input gradient with several micro-batches in flight, activation
// recomputation, and one AdamW step; plus the Buffer primitives the model relies on.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "../model_test_util.h"
#include "cuda_test_util.h"
#include "mds/core/buffer.h"
#include "mds/core/error.h"
#include "mds/model/llama.h"
#include "mds/ops/backend.h"
#include "mds/optim/adamw.h"

namespace mds {
namespace {

using model::LlamaConfig;
using model::LlamaModel;
using model::ModelShard;
using model::Recompute;

// Per-tensor relative L2 distance: the GPU sums in other orders than the CPU (cuBLASLt, the
// flash kernels' tiles), ~1e-6 relative per op; over two layers and the head the gradients
// drift further where they cancel. Not yet calibrated on a GPU.
constexpr double kLossRtol = 1e-5;
constexpr double kGradRelL2 = 1e-4;

LlamaConfig config() {
  LlamaConfig c;
  c.num_layers = 3;
  c.hidden_size = 64;
  c.ffn_hidden_size = 160;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 48;
  c.vocab_size = 300;  // padded to 384
  c.init_method_std = 0.05f;
  c.finalize(128);
  return c;
}

ops::Backend& gpu() {
  return ops::backend_for(ops::Device::cuda);
}

void expect_same_gradients(const LlamaModel& gpu_model, const LlamaModel& cpu_model) {
  const std::vector<float> g = gpu_model.grads().to_host();
  const std::vector<float> want = cpu_model.grads().to_host();
  for (const model::ParamInfo& p : cpu_model.table().params())
    EXPECT_LT(test::rel_l2(g.data() + p.offset, want.data() + p.offset, p.numel), kGradRelL2)
        << p.name;
}

class CudaModel : public test::CudaTest {};

TEST_F(CudaModel, BuffersResizeKeepingContentsAndCopyBothWays) {
  Buffer<float> b(gpu(), 5);
  const std::vector<float> x = {1, 2, 3, 4, 5};
  b.upload(x.data(), 5);
  b.resize(1000);  // reallocates, keeps the first 5
  b.resize(5);
  EXPECT_EQ(b.to_host(), x);
  EXPECT_EQ(b.capacity(), 1000);
  Buffer<float> strided(gpu(), 6);
  strided.zero();
  gpu().copy_2d(strided.data(), 3 * sizeof(float), b.data() + 1, 2 * sizeof(float), sizeof(float),
                2);  // elements 1, 3 of b to 0, 3
  EXPECT_EQ(strided.to_host(), (std::vector<float>{2, 0, 0, 4, 0, 0}));
}

TEST_F(CudaModel, WholeModelLossAndGradientsMatchTheCpu) {
  const LlamaConfig c = config();
  const int64_t b = 2, s = c.seq_length;
  const auto tokens = test::random_ids(b * s, c.vocab_size, 1),
             targets = test::random_ids(b * s, c.vocab_size, 2);
  for (const Recompute& r :
       {Recompute{},
        Recompute{model::RecomputeGranularity::full, model::RecomputeMethod::uniform, 2},
        Recompute{model::RecomputeGranularity::selective, model::RecomputeMethod::uniform, 1}}) {
    SCOPED_TRACE(r.describe());
    LlamaModel on_cpu(c, {}, {}, r), on_gpu(c, {}, {}, r, gpu());
    on_cpu.init_weights(9);
    on_gpu.init_weights(9);
    EXPECT_EQ(on_gpu.params().to_host(), on_cpu.params().to_host());  // drawn on the host
    on_cpu.zero_grads();
    on_gpu.zero_grads();
    const double want = on_cpu.forward_backward(tokens.data(), targets.data(), b, s, 0.5f);
    const double got = on_gpu.forward_backward(tokens.data(), targets.data(), b, s, 0.5f);
    EXPECT_NEAR(got, want, kLossRtol * want);
    expect_same_gradients(on_gpu, on_cpu);
    EXPECT_NEAR(on_gpu.forward_loss(tokens.data(), targets.data(), b, s),
                on_cpu.forward_loss(tokens.data(), targets.data(), b, s), kLossRtol * want);
  }
}

// The CUDA kernels do not check targets (ops_cuda.h): the model does, on the host, so a token
// outside the vocabulary is still one clear UserError, and the weights are untouched.
TEST_F(CudaModel, TargetOutsideTheVocabularyIsAUserErrorFromTheModel) {
  const LlamaConfig c = config();
  const int64_t s = c.seq_length;
  auto tokens = test::random_ids(s, c.vocab_size, 1),
       targets = test::random_ids(s, c.vocab_size, 2);
  targets[7] = static_cast<int32_t>(c.vocab_size);  // a padding row of the head: still invalid
  LlamaModel m(c, {}, {}, {}, gpu());
  m.init_weights(9);
  m.zero_grads();
  try {
    m.forward_backward(tokens.data(), targets.data(), 1, s, 1.0f);
    FAIL() << "no error for a target outside the vocabulary";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("target token id 300 (position 7)"), std::string::npos)
        << e.what();
  }
}

// The middle of three stages (layer 1 of 3), three micro-batches in flight: the input
// gradients returned to the previous stage, and the accumulated weight gradients.
TEST_F(CudaModel, PipelineStageWithSlotsInFlightMatchesTheCpu) {
  const LlamaConfig c = config();
  const ModelShard middle = ModelShard::of(c, 0, 1, 1, 3);
  const model::BatchShape shape{2, c.seq_length, 0};
  const int64_t nh = shape.n() * c.hidden_size;
  LlamaModel on_cpu(c, middle), on_gpu(c, middle, {}, {}, gpu());
  on_cpu.init_weights(4);
  on_gpu.init_weights(4);
  on_cpu.zero_grads();
  on_gpu.zero_grads();
  on_cpu.prepare(shape, 3);
  on_gpu.prepare(shape, 3);
  std::vector<std::vector<float>> inputs;
  for (int k = 0; k < 3; ++k) inputs.push_back(test::randn(static_cast<size_t>(nh), 30 + k));
  const std::vector<float> d_out = test::randn(static_cast<size_t>(nh), 40);
  Buffer<float> in_gpu(gpu(), nh), d_gpu(gpu(), nh);
  d_gpu.upload(d_out.data(), nh);
  for (int k = 0; k < 3; ++k) {
    on_cpu.forward(k, nullptr, inputs[k].data());
    in_gpu.upload(inputs[k].data(), nh);
    on_gpu.forward(k, nullptr, in_gpu.data());
  }
  for (int k = 0; k < 3; ++k) {
    const float* want = on_cpu.backward(k, d_out.data());
    std::vector<float> got(static_cast<size_t>(nh));
    gpu().download(got.data(), on_gpu.backward(k, d_gpu.data()), got.size() * sizeof(float));
    EXPECT_LT(test::rel_l2(got.data(), want, nh), kGradRelL2) << "micro-batch " << k;
  }
  expect_same_gradients(on_gpu, on_cpu);
}

TEST_F(CudaModel, OneAdamWStepMatchesTheCpu) {
  const LlamaConfig c = config();
  const int64_t b = 1, s = c.seq_length;
  const auto tokens = test::random_ids(b * s, c.vocab_size, 5),
             targets = test::random_ids(b * s, c.vocab_size, 6);
  LlamaModel on_cpu(c), on_gpu(c, {}, {}, {}, gpu());
  optim::AdamW opt_cpu(on_cpu.table(), {}), opt_gpu(on_gpu.table(), {}, gpu());
  for (LlamaModel* m : {&on_cpu, &on_gpu}) {
    m->init_weights(2);
    m->zero_grads();
    m->forward_backward(tokens.data(), targets.data(), b, s, 1.0f);
  }
  const double norm_cpu = opt_cpu.step(on_cpu.params().data(), on_cpu.grads().data(), 1e-3);
  const double norm_gpu = opt_gpu.step(on_gpu.params().data(), on_gpu.grads().data(), 1e-3);
  EXPECT_NEAR(norm_gpu, norm_cpu, 1e-5 * norm_cpu);
  const std::vector<float> p = on_gpu.params().to_host(), want = on_cpu.params().to_host();
  for (const model::ParamInfo& info : on_cpu.table().params())
    EXPECT_LT(test::rel_l2(p.data() + info.offset, want.data() + info.offset, info.numel), 1e-5)
        << info.name;
}

}  // namespace
}  // namespace mds
