#include <gtest/gtest.h>

#include "mds/core/error.h"
#include "mds/model/config.h"
#include "mds/model/params.h"

using mds::model::LlamaConfig;

static LlamaConfig tiny() {
  LlamaConfig c;
  c.num_layers = 2;
  c.hidden_size = 64;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.seq_length = 16;
  c.vocab_size = 50257;
  return c;
}

TEST(LlamaConfig, DerivesMegatronDefaults) {
  LlamaConfig c = tiny();
  c.hidden_size = 4096;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.finalize(128);
  EXPECT_EQ(c.ffn_hidden_size, 10880);  // int(8*4096/3/64)*64
  EXPECT_EQ(c.padded_vocab_size, 50304);
  EXPECT_EQ(c.max_position_embeddings, 16);
}

TEST(LlamaConfig, PadsVocabToMultipleOfDivisorTimesTP) {
  LlamaConfig c = tiny();
  c.finalize(128, 4);
  EXPECT_EQ(c.padded_vocab_size, 50688);
}

TEST(LlamaConfig, RejectsInvalidShapes) {
  LlamaConfig c = tiny();
  c.hidden_size = 66;
  EXPECT_THROW(c.finalize(128), mds::UserError);
  c = tiny();
  c.num_key_value_heads = 3;
  EXPECT_THROW(c.finalize(128), mds::UserError);
  c = tiny();
  c.seq_length = 32;
  c.max_position_embeddings = 16;
  EXPECT_THROW(c.finalize(128), mds::UserError);
}

TEST(ParamTable, LaysOutHuggingFaceNamesContiguously) {
  LlamaConfig c = tiny();
  c.finalize(128);
  mds::model::ParamTable t(c);
  int64_t next = 0;
  for (const auto& p : t.params()) {
    EXPECT_EQ(p.offset, next) << p.name;
    next += p.numel;
    EXPECT_EQ(p.decay, p.shape.size() > 1) << p.name;
  }
  EXPECT_EQ(next, t.total());
  // q, k, v adjacent so one fused GEMM computes all three.
  const auto& q = t.at("model.layers.1.self_attn.q_proj.weight");
  const auto& k = t.at("model.layers.1.self_attn.k_proj.weight");
  const auto& v = t.at("model.layers.1.self_attn.v_proj.weight");
  EXPECT_EQ(k.offset, q.offset + q.numel);
  EXPECT_EQ(v.offset, k.offset + k.numel);
  EXPECT_EQ(k.shape[0], 32);  // 2 kv heads x head dim 16
  const auto& gate = t.at("model.layers.0.mlp.gate_proj.weight");
  EXPECT_EQ(t.at("model.layers.0.mlp.up_proj.weight").offset, gate.offset + gate.numel);
  EXPECT_EQ(t.at("lm_head.weight").shape[0], 50304);
}
