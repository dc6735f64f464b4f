// Opening a checkpoint for inference (infer/checkpoint_model.h): --load resolved like mds train
// resolves it, config.json to the model's shape, and the tokenizer's order of precedence: the
// flags, then a tokenizer.json / tokenizer.model in the folder, then the tokenizer flags of the
// run recorded in mds_state.json; and the stop token.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "mds/ckpt/checkpoint_dir.h"
#include "mds/core/error.h"
#include "mds/infer/checkpoint_model.h"
#include "mds/model/llama.h"

namespace fs = std::filesystem;

namespace mds {
namespace {

const std::string kData = MDS_SOURCE_DIR "/data";

class CheckpointModelTest : public ::testing::Test {
 protected:
  fs::path dir = fs::temp_directory_path() /
                 ("mds_ckpt_model_test_" +
                  std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  model::LlamaConfig c;
  std::unique_ptr<model::LlamaModel> m;

  void SetUp() override {
    fs::remove_all(dir);
    c.num_layers = 1;
    c.hidden_size = 16;
    c.ffn_hidden_size = 32;
    c.num_attention_heads = 2;
    c.seq_length = 40;
    c.vocab_size = 50257;
    c.finalize(128);
    m = std::make_unique<model::LlamaModel>(c);
    m->init_weights(1);
  }
  void TearDown() override { fs::remove_all(dir); }

  // A `mds train --save` folder whose run used these tokenizer flags.
  std::string save(const std::string& command_line, std::optional<int64_t> eos = std::nullopt) {
    ckpt::TrainState state;
    state.iteration = 5;
    state.args = {{"command_line", command_line}};
    ckpt::HfSaveOptions o;
    o.eos_token_id = eos;
    return ckpt::save_checkpoint((dir / "save").string(), state, c, m->table(), m->params().data(),
                                 o);
  }
};

TEST_F(CheckpointModelTest, ConfigAndWeightsRoundTrip) {
  const std::string iter = save("--num-layers 1");
  const infer::CheckpointModel cm = infer::open_checkpoint((dir / "save").string());
  EXPECT_EQ(cm.dir, iter);
  EXPECT_EQ(cm.config.num_layers, 1);
  EXPECT_EQ(cm.config.hidden_size, 16);
  EXPECT_EQ(cm.config.vocab_size, 50257);
  EXPECT_EQ(cm.config.max_position_embeddings, 40);
  EXPECT_EQ(cm.config.seq_length, 40);
  const std::vector<float> w = infer::load_weights(cm);
  ASSERT_EQ(w.size(), m->params().size());
  // Everything but the padding rows of the embedding and head (zero on load) comes back.
  for (const auto& p : m->table().params()) {
    const bool vocab = p.name == "model.embed_tokens.weight" || p.name == "lm_head.weight";
    const int64_t n = vocab ? c.vocab_size * c.hidden_size : p.numel;
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(w[size_t(p.offset + i)], m->params()[size_t(p.offset + i)]) << p.name;
  }
}

TEST_F(CheckpointModelTest, TokenizerPrecedence) {
  const std::string gpt2 = "--tokenizer-type GPT2BPETokenizer --vocab-file " + kData +
                           "/gpt2-vocab.json --merge-file=" + kData + "/gpt2-merges.txt";
  const std::string iter = save("--num-layers 1 " + gpt2 + " --lr 1e-3");
  const infer::CheckpointModel cm = infer::open_checkpoint((dir / "save").string());

  // 3. The run's recorded flags ("--flag value" and "--flag=value").
  auto rt = infer::checkpoint_tokenizer(cm, {});
  ASSERT_TRUE(rt.tokenizer);
  EXPECT_EQ(rt.tokenizer->vocab_size(), 50257);
  EXPECT_NE(rt.source.find("mds_state.json"), std::string::npos) << rt.source;
  EXPECT_EQ(rt.tokenizer->encode("Hello world"), (std::vector<int32_t>{15496, 995}));

  // 2. A tokenizer.model, then a tokenizer.json (preferred), in the save folder above the
  //    iteration folder and in the iteration folder itself.
  fs::copy_file(kData + "/brown-sp.model", dir / "save" / "tokenizer.model");
  rt = infer::checkpoint_tokenizer(cm, {});
  EXPECT_EQ(rt.source, "Llama2Tokenizer " + (dir / "save" / "tokenizer.model").string());
  fs::copy_file(kData + "/hf-llama2/tokenizer.json", fs::path(iter) / "tokenizer.json");
  rt = infer::checkpoint_tokenizer(cm, {});
  EXPECT_EQ(rt.source, "HFTokenizer " + (fs::path(iter) / "tokenizer.json").string());
  EXPECT_EQ(rt.tokenizer->vocab_size(), 32000);

  // 1. Flags win over everything.
  data::TokenizerOptions flags;
  flags.type = "NullTokenizer";
  flags.vocab_size = 77;
  rt = infer::checkpoint_tokenizer(cm, flags);
  EXPECT_EQ(rt.tokenizer->vocab_size(), 78);
}

TEST_F(CheckpointModelTest, NoTokenizerWhenTheRecordedFilesAreGone) {
  save(
      "--tokenizer-type GPT2BPETokenizer --vocab-file /nonexistent/vocab.json --merge-file "
      "/nonexistent/merges.txt");
  const infer::CheckpointModel cm = infer::open_checkpoint((dir / "save").string());
  EXPECT_FALSE(infer::checkpoint_tokenizer(cm, {}).tokenizer);
  // A plain HF folder (no mds_state.json) and no tokenizer files: none either.
  fs::remove(fs::path(cm.dir) / "mds_state.json");
  EXPECT_FALSE(infer::checkpoint_tokenizer(infer::open_checkpoint(cm.dir), {}).tokenizer);
}

TEST_F(CheckpointModelTest, StopTokenIsConfigEosElseTokenizerEod) {
  save("", 7);
  const infer::CheckpointModel with_eos = infer::open_checkpoint((dir / "save").string());
  data::TokenizerOptions null_tok;
  null_tok.type = "NullTokenizer";
  null_tok.vocab_size = 10;
  const auto tok = data::build_tokenizer(null_tok);
  EXPECT_EQ(infer::stop_token(with_eos, tok.get()), 7);
  fs::remove_all(dir / "save");
  save("");
  const infer::CheckpointModel without = infer::open_checkpoint((dir / "save").string());
  EXPECT_EQ(infer::stop_token(without, tok.get()), 10);  // NullTokenizer's eod = N
  EXPECT_EQ(infer::stop_token(without, nullptr), std::nullopt);
}

TEST_F(CheckpointModelTest, MissingFolderOrConfigIsAUserError) {
  EXPECT_THROW(infer::open_checkpoint((dir / "nope").string()), UserError);
  fs::create_directories(dir / "empty");
  EXPECT_THROW(infer::open_checkpoint((dir / "empty").string()), UserError);
  const std::string iter = save("");
  fs::remove(fs::path(iter) / "config.json");  // latest names a folder without config.json
  EXPECT_THROW(infer::open_checkpoint((dir / "save").string()), UserError);
}

}  // namespace
}  // namespace mds
