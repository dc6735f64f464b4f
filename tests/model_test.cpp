// The whole model: gradients against an independent PyTorch Llama (float64) and against
// finite differences; gradient accumulation; padded vocabulary; layout-independent init.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "mds/core/rng.h"
#include "mds/model/llama.h"
#include "model_test_util.h"

using mds::model::LlamaConfig;
using mds::model::LlamaModel;

namespace {

LlamaConfig tiny_config(int64_t seq) {
  LlamaConfig c;
  c.num_layers = 2;
  c.hidden_size = 32;
  c.ffn_hidden_size = 48;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = seq;
  c.vocab_size = 100;  // padded to 128: 28 masked rows
  c.init_method_std = 0.1f;
  c.rope_theta = 500.0;  // fast rotation so position matters within a short sequence
  c.finalize(128);
  return c;
}

template <typename T>
void write_raw(const std::filesystem::path& p, const std::vector<T>& v) {
  std::ofstream(p, std::ios::binary)
      .write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(T)));
}

}  // namespace

TEST(LlamaModel, LossAndGradientsMatchTorchReference) {
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null"), 0)
      << "PyTorch missing: run scripts/setup.sh (installs python3-torch)";
  const int64_t b = 2, s = 72;  // s spans more than one attention tile
  LlamaConfig c = tiny_config(s);
  LlamaModel m(c);
  m.init_weights(7);
  const auto tokens = mds::test::random_ids(b * s, c.vocab_size, 1),
             targets = mds::test::random_ids(b * s, c.vocab_size, 2);
  m.zero_grads();
  const double loss = m.forward_backward(tokens.data(), targets.data(), b, s, 1.0f);

  const auto dir = std::filesystem::temp_directory_path() / "mds_model_test";
  std::filesystem::create_directories(dir);
  nlohmann::json spec = {{"layers", c.num_layers},
                         {"hidden", c.hidden_size},
                         {"ffn", c.ffn_hidden_size},
                         {"heads", c.num_attention_heads},
                         {"kv_heads", c.kv_heads()},
                         {"vocab", c.vocab_size},
                         {"padded_vocab", c.padded_vocab_size},
                         {"seq", s},
                         {"batch", b},
                         {"theta", c.rope_theta},
                         {"eps", c.norm_eps}};
  for (const auto& p : m.table().params())
    spec["params"].push_back(
        {{"name", p.name}, {"shape", p.shape}, {"offset", p.offset}, {"numel", p.numel}});
  std::ofstream(dir / "spec.json") << spec.dump();
  write_raw(dir / "params.bin", m.params().to_host());
  write_raw(dir / "tokens.bin", tokens);
  write_raw(dir / "targets.bin", targets);
  const std::string cmd =
      "/usr/bin/python3 " MDS_SOURCE_DIR "/tests/reference/torch_llama.py " + dir.string();
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;

  double ref_loss = 0;
  std::ifstream(dir / "loss.txt") >> ref_loss;
  EXPECT_NEAR(loss, ref_loss, 1e-5 * ref_loss);
  std::vector<float> ref(m.table().total());
  std::ifstream(dir / "grads.bin", std::ios::binary)
      .read(reinterpret_cast<char*>(ref.data()), std::streamsize(ref.size() * sizeof(float)));
  for (const auto& p : m.table().params())
    EXPECT_LT(mds::test::rel_l2(m.grads().data() + p.offset, ref.data() + p.offset, p.numel), 1e-4)
        << p.name;
}

TEST(LlamaModel, GradientsMatchFiniteDifferences) {
  const int64_t b = 1, s = 12;
  LlamaConfig c = tiny_config(s);
  LlamaModel m(c);
  m.init_weights(3);
  const auto tokens = mds::test::random_ids(b * s, c.vocab_size, 5),
             targets = mds::test::random_ids(b * s, c.vocab_size, 6);
  m.zero_grads();
  m.forward_backward(tokens.data(), targets.data(), b, s, 1.0f);
  std::mt19937 gen(11);
  for (const auto& p : m.table().params()) {
    // A few entries of every tensor (rows of the embedding/head that the batch touches).
    for (int trial = 0; trial < 3; ++trial) {
      int64_t i = int64_t(gen() % p.numel);
      if (p.name == "model.embed_tokens.weight") i = tokens[trial] * c.hidden_size + trial;
      if (p.name == "lm_head.weight") i = targets[trial] * c.hidden_size + trial;
      float& w = m.params()[p.offset + i];
      const float saved = w, eps = 1e-2f;
      w = saved + eps;
      const double up = m.forward_loss(tokens.data(), targets.data(), b, s);
      w = saved - eps;
      const double down = m.forward_loss(tokens.data(), targets.data(), b, s);
      w = saved;
      const double fd = (up - down) / (2.0 * eps), g = m.grads()[p.offset + i];
      EXPECT_NEAR(g, fd, 2e-3 * std::max(1.0, std::abs(fd)) + 2e-4) << p.name << "[" << i << "]";
    }
  }
}

TEST(LlamaModel, AccumulatedMicroBatchesEqualOneBatch) {
  const int64_t s = 16;
  LlamaConfig c = tiny_config(s);
  LlamaModel m(c);
  m.init_weights(1);
  const auto tokens = mds::test::random_ids(2 * s, c.vocab_size, 8),
             targets = mds::test::random_ids(2 * s, c.vocab_size, 9);
  m.zero_grads();
  const double whole = m.forward_backward(tokens.data(), targets.data(), 2, s, 1.0f);
  const std::vector<float> g_whole = m.grads().to_host();
  m.zero_grads();
  double halves = 0;
  for (int k = 0; k < 2; ++k)
    halves += 0.5 * m.forward_backward(tokens.data() + k * s, targets.data() + k * s, 1, s, 0.5f);
  EXPECT_NEAR(halves, whole, 1e-6 * whole);
  EXPECT_LT(mds::test::rel_l2(m.grads().data(), g_whole.data(), int64_t(g_whole.size())), 1e-5);
}

TEST(LlamaModel, PaddedVocabularyRowsTakeNoPart) {
  const int64_t s = 8;
  LlamaConfig c = tiny_config(s);
  LlamaModel m(c);
  m.init_weights(2);
  const auto tokens = mds::test::random_ids(s, c.vocab_size, 3),
             targets = mds::test::random_ids(s, c.vocab_size, 4);
  m.zero_grads();
  const double loss = m.forward_backward(tokens.data(), targets.data(), 1, s, 1.0f);
  const auto& head = m.table().at("lm_head.weight");
  for (int64_t i = c.vocab_size * c.hidden_size; i < head.numel; ++i)
    ASSERT_EQ(m.grads()[head.offset + i], 0.0f);
  // Changing the padding rows changes nothing: a model saved without them loads back exactly.
  for (int64_t i = c.vocab_size * c.hidden_size; i < head.numel; ++i)
    m.params()[head.offset + i] = 100.0f;
  EXPECT_EQ(m.forward_loss(tokens.data(), targets.data(), 1, s), loss);
}

TEST(LlamaModel, InitDependsOnlyOnSeedNameAndIndex) {
  std::vector<float> full(1000), part(300);
  mds::fill_normal(full.data(), 1000, 0.5f, 42, mds::stream_id("w"));
  mds::fill_normal(part.data(), 300, 0.5f, 42, mds::stream_id("w"), 501);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(part[i], full[501 + i]);
  double mean = 0, var = 0;
  for (float x : full) mean += x / 1000.0;
  for (float x : full) var += (x - mean) * (x - mean) / 1000.0;
  EXPECT_NEAR(mean, 0.0, 0.05);
  EXPECT_NEAR(std::sqrt(var), 0.5, 0.05);
  LlamaConfig c = tiny_config(8);
  LlamaModel a(c), b(c);
  a.init_weights(5);
  b.init_weights(5);
  EXPECT_EQ(a.params(), b.params());
  b.init_weights(6);
  EXPECT_NE(a.params(), b.params());
  const auto& norm = a.table().at("model.norm.weight");
  EXPECT_EQ(a.params()[norm.offset], 1.0f);
}

// The overlapped gradient reduction trusts backward's grads_final(begin): at each call the
// gradients [begin, end) must already hold their final values, and begin only falls, to 0.
// A snapshot of grads() at every call, compared with the gradients after backward, checks it
// (with a second micro-batch accumulated first, so "final" means after the last +=).
TEST(LlamaModel, GradsFinalIsCalledOnlyOnceGradientsAreFinal) {
  const int64_t s = 16;
  LlamaConfig c = tiny_config(s);
  LlamaModel m(c);
  m.init_weights(1);
  const auto tokens = mds::test::random_ids(2 * s, c.vocab_size, 8),
             targets = mds::test::random_ids(2 * s, c.vocab_size, 9);
  m.zero_grads();
  m.prepare({1, s, 0}, 2);
  for (int k = 0; k < 2; ++k) m.forward(k, tokens.data() + k * s, nullptr);
  m.loss_and_grad(0, targets.data(), 0.5f);
  m.backward(0, nullptr);
  m.loss_and_grad(1, targets.data() + s, 0.5f);
  std::vector<std::pair<int64_t, std::vector<float>>> snapshots;
  m.backward(1, nullptr,
             [&](int64_t begin) { snapshots.emplace_back(begin, m.grads().to_host()); });
  const std::vector<float> final_grads = m.grads().to_host();
  const int64_t n = int64_t(final_grads.size());
  ASSERT_EQ(snapshots.size(), size_t(c.num_layers + 2));  // head, each block, the embedding
  EXPECT_EQ(snapshots.back().first, 0);
  int64_t last = n;
  for (const auto& [begin, grads] : snapshots) {
    ASSERT_LE(begin, last);
    ASSERT_GE(begin, 0);
    for (int64_t i = begin; i < n; ++i)
      ASSERT_EQ(grads[size_t(i)], final_grads[size_t(i)])
          << "gradient " << i << " of " << n << " not final when [" << begin
          << ", end) was said to be";
    last = begin;
  }
  // ...and the boundaries are tight: below each one, some gradient was still to change.
  for (size_t k = 0; k + 1 < snapshots.size(); ++k) {
    const auto& [begin, grads] = snapshots[k];
    bool changes = false;
    for (int64_t i = snapshots[k + 1].first; i < begin; ++i)
      changes = changes || grads[size_t(i)] != final_grads[size_t(i)];
    EXPECT_TRUE(changes) << "nothing below " << begin << " changed after its call";
  }
}
