// mds eval's computation (infer/evaluate.h) on a hand-built checkpoint: random weights saved in
// the Hugging Face layout, read back as `mds eval` reads them, against an independent float64
// PyTorch computation of the same windows (tests/reference/llama_eval.py). Also: the dataset
// stream is the .bin's sequences in index order, micro-batching does not change the result, and
// each user mistake is a UserError.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "mds/ckpt/hf_checkpoint.h"
#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"
#include "mds/infer/checkpoint_model.h"
#include "mds/infer/evaluate.h"
#include "mds/model/llama.h"
#include "model_test_util.h"

namespace fs = std::filesystem;

namespace mds {
namespace {

using model::LlamaConfig;
using model::LlamaModel;

std::string run_output(const std::string& cmd) {
  std::string out;
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  return pclose(p) == 0 ? out : "";
}

class EvalTest : public ::testing::Test {
 protected:
  fs::path dir;
  LlamaConfig c;

  // A checkpoint written as mds train --save writes one (vocab 100 rows; the model pads to 128).
  void SetUp() override {
    dir = fs::temp_directory_path() /
          ("mds_eval_test_" +
           std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir);
    c.num_layers = 2;
    c.hidden_size = 32;
    c.ffn_hidden_size = 48;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.seq_length = 32;
    c.vocab_size = 100;
    c.init_method_std = 0.2f;
    c.rope_theta = 500.0;
    c.finalize(128);
    LlamaModel m(c);
    m.init_weights(11);
    ckpt::save_hf_checkpoint((dir / "ckpt").string(), c, m.table(), m.params().data());
  }
  void TearDown() override { fs::remove_all(dir); }

  // The model as mds eval builds it: config.json -> LlamaConfig, weights from safetensors.
  std::unique_ptr<LlamaModel> load() {
    const infer::CheckpointModel cm = infer::open_checkpoint((dir / "ckpt").string());
    auto m = std::make_unique<LlamaModel>(cm.config);
    ckpt::load_hf_checkpoint(cm.dir, cm.config, m->table(), m->params().data());
    return m;
  }
};

TEST_F(EvalTest, MatchesFloat64TorchReference) {
  ASSERT_EQ(std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null"), 0)
      << "PyTorch missing: run scripts/setup.sh (installs python3-torch)";
  // 1013 tokens, N = 24: 40 windows of 25, 13 tokens dropped; micro-batches of 3 leave a last
  // batch of 1.
  const auto ids = test::random_ids(1013, c.vocab_size, 5);
  std::ofstream(dir / "tokens.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(ids.data()), std::streamsize(ids.size() * 4));
  auto m = load();
  const infer::EvalResult r = infer::evaluate(*m, infer::VectorTokenStream(ids), 24, 3);
  EXPECT_EQ(r.windows, 40);
  EXPECT_EQ(r.tokens, 40 * 24);

  const std::string cmd = "/usr/bin/python3 " MDS_SOURCE_DIR "/tests/reference/llama_eval.py " +
                          (dir / "ckpt").string() + " " + (dir / "tokens.bin").string() +
                          " --seq-length 24";
  const std::string out = run_output(cmd);
  ASSERT_FALSE(out.empty()) << cmd;
  const auto ref = nlohmann::json::parse(out);
  EXPECT_EQ(ref["windows"], 40);
  EXPECT_EQ(ref["tokens"], 960);
  const double ref_loss = ref["loss"];
  EXPECT_NEAR(r.loss, ref_loss, 1e-5 * ref_loss) << "reference " << out;
  std::printf("mds %.9f reference %.9f (relative difference %.2e)\n", r.loss, ref_loss,
              std::fabs(r.loss - ref_loss) / ref_loss);
  // A random model is near uniform over the vocabulary, but not exactly.
  EXPECT_GT(std::fabs(ref_loss - std::log(100.0)), 1e-3);
}

TEST_F(EvalTest, MicroBatchSizeDoesNotChangeTheLoss) {
  const auto ids = test::random_ids(500, c.vocab_size, 6);
  auto m = load();
  const infer::VectorTokenStream s(ids);
  const infer::EvalResult one = infer::evaluate(*m, s, 30, 1), many = infer::evaluate(*m, s, 30, 7),
                          all = infer::evaluate(*m, s, 30, 100);
  EXPECT_EQ(one.windows, 16);  // 500 / 31
  EXPECT_NEAR(many.loss, one.loss, 1e-6 * one.loss);
  EXPECT_NEAR(all.loss, one.loss, 1e-6 * one.loss);
}

// Windows are independent sequences from position 0: the second window's loss does not depend
// on the first window's tokens.
TEST_F(EvalTest, WindowsDoNotSeeEachOther) {
  auto m = load();
  auto ids = test::random_ids(2 * 17, c.vocab_size, 7);
  const double both = infer::evaluate(*m, infer::VectorTokenStream(ids), 16, 2).loss;
  const std::vector<int32_t> second(ids.begin() + 17, ids.end());
  const double b = infer::evaluate(*m, infer::VectorTokenStream(second), 16, 1).loss;
  for (int i = 0; i < 17; ++i) ids[size_t(i)] = (ids[size_t(i)] + 1) % 100;
  const std::vector<int32_t> first(ids.begin(), ids.begin() + 17);
  const double a = infer::evaluate(*m, infer::VectorTokenStream(first), 16, 1).loss;
  const double changed = infer::evaluate(*m, infer::VectorTokenStream(ids), 16, 2).loss;
  EXPECT_NEAR(changed, (a + b) / 2, 1e-6 * changed);
  EXPECT_NE(changed, both);
}

TEST_F(EvalTest, UserMistakesAreUserErrors) {
  auto m = load();
  const infer::VectorTokenStream short_stream(test::random_ids(20, c.vocab_size, 8));
  EXPECT_THROW(infer::evaluate(*m, short_stream, 20, 1), UserError);  // 20 < N + 1
  EXPECT_NO_THROW(infer::evaluate(*m, short_stream, 19, 1));          // exactly one window
  EXPECT_THROW(infer::evaluate(*m, short_stream, 33, 1), UserError);  // > max positions (32)
  EXPECT_THROW(infer::evaluate(*m, short_stream, 0, 1), UserError);
  auto ids = test::random_ids(40, c.vocab_size, 9);
  ids[39] = 100;  // outside the vocabulary (a padding row)
  EXPECT_THROW(infer::evaluate(*m, infer::VectorTokenStream(ids), 9, 1), UserError);
  // Only the windows read are checked: token 39 lies in the dropped remainder of N = 12.
  EXPECT_NO_THROW(infer::evaluate(*m, infer::VectorTokenStream(ids), 12, 1));
  EXPECT_THROW(infer::open_checkpoint((dir / "nope").string()), UserError);
  fs::create_directories(dir / "empty");
  EXPECT_THROW(infer::open_checkpoint((dir / "empty").string()), UserError);  // no config.json
}

TEST_F(EvalTest, DatasetStreamIsTheSequencesInIndexOrder) {
  // Documents of several sequences and an empty document.
  const auto ids = test::random_ids(60, c.vocab_size, 10);
  {
    data::IndexedDatasetWriter w((dir / "data").string(), data::TokenDType::u16);
    const std::vector<int32_t> lengths_a = {5, 7}, lengths_b = {0 + 20}, lengths_c = {1, 27};
    w.add_document(std::span(ids).subspan(0, 12), lengths_a);
    w.add_document(std::span<const int32_t>{});
    w.add_document(std::span(ids).subspan(12, 20), lengths_b);
    w.add_document(std::span(ids).subspan(32, 28), lengths_c);
    w.finalize();
  }
  const infer::DatasetTokenStream s((dir / "data").string());
  ASSERT_EQ(s.size(), 60);
  for (int64_t offset : {0, 3, 5, 11, 12, 31, 32, 33, 59})
    for (int64_t count :
         {int64_t(0), int64_t(1), std::min<int64_t>(29, 60 - offset), 60 - offset}) {
      std::vector<int32_t> got(static_cast<size_t>(count));
      s.read(offset, count, got.data());
      EXPECT_EQ(got, std::vector<int32_t>(ids.begin() + offset, ids.begin() + offset + count))
          << offset << "+" << count;
    }
  auto m = load();
  EXPECT_EQ(infer::evaluate(*m, s, 14, 2).loss,
            infer::evaluate(*m, infer::VectorTokenStream(ids), 14, 2).loss);
}

}  // namespace
}  // namespace mds
