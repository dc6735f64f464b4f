#include "mds/model/block.h"

#include "mds/ops/ops.h"

namespace mds::model {

BlockWeights BlockWeights::in(float* base, const ParamTable& table, int64_t layer) {
  const std::string l = "model.layers." + std::to_string(layer) + ".";
  auto at = [&](const char* name) { return base + table.at(l + name).offset; };
  return {at("input_layernorm.weight"),  at("self_attn.q_proj.weight"),
          at("self_attn.o_proj.weight"), at("post_attention_layernorm.weight"),
          at("mlp.gate_proj.weight"),    at("mlp.down_proj.weight")};
}

void BlockActs::resize(const LlamaConfig& c, const BatchShape& shape) {
  const int64_t n = shape.n(), h = c.hidden_size, f = c.ffn_hidden_size;
  norm1.resize(n * h);
  rstd1.resize(n);
  qkv.resize(n * c.qkv_dim());
  attn.resize(n * c.q_dim());
  lse.resize(n * c.num_attention_heads);
  mid.resize(n * h);
  norm2.resize(n * h);
  rstd2.resize(n);
  gate_up.resize(n * 2 * f);
  act.resize(n * f);
}

void BlockScratch::resize(const LlamaConfig& c, const BatchShape& shape) {
  const int64_t n = shape.n();
  d_norm.resize(n * c.hidden_size);
  d_qkv.resize(n * c.qkv_dim());
  d_attn.resize(n * c.q_dim());
  d_gate_up.resize(n * 2 * c.ffn_hidden_size);
  d_act.resize(n * c.ffn_hidden_size);
}

RopeTables::RopeTables(const LlamaConfig& c) {
  const int64_t half = c.head_dim() / 2;
  cos.resize(c.max_position_embeddings * half);
  sin.resize(c.max_position_embeddings * half);
  ops::rope_tables(cos.data(), sin.data(), c.max_position_embeddings, c.head_dim(), c.rope_theta);
}

void block_forward(float* y, const float* x, const BlockWeights& w, BlockActs& a,
                   const LlamaConfig& c, const RopeTables& rope, const BatchShape& shape) {
  const int64_t n = shape.n(), h = c.hidden_size, f = c.ffn_hidden_size, hd = c.head_dim();
  const int64_t nq = c.num_attention_heads, nkv = c.kv_heads();
  const int64_t qd = c.q_dim(), kvd = c.kv_dim(), qkvd = c.qkv_dim();
  float* q = a.qkv.data();
  float* k = q + qd;
  float* v = k + kvd;

  // Attention half: mid = x + o_proj(attn(rope(q), rope(k), v)).
  ops::rmsnorm_forward(a.norm1.data(), a.rstd1.data(), x, w.input_norm, n, h, c.norm_eps);
  ops::linear_forward(q, a.norm1.data(), w.qkv, n, h, qkvd);
  ops::rope_forward(q, rope.cos.data(), rope.sin.data(), shape.b, shape.s, nq, hd, qkvd,
                    shape.pos0);
  ops::rope_forward(k, rope.cos.data(), rope.sin.data(), shape.b, shape.s, nkv, hd, qkvd,
                    shape.pos0);
  ops::attention_forward(a.attn.data(), a.lse.data(), q, k, v, shape.b, shape.s, nq, nkv, hd, qkvd,
                         qd);
  ops::linear_forward(a.mid.data(), a.attn.data(), w.o_proj, n, qd, h);
  ops::add_inplace(a.mid.data(), x, n * h);

  // MLP half: y = mid + down(silu(gate) * up).
  ops::rmsnorm_forward(a.norm2.data(), a.rstd2.data(), a.mid.data(), w.post_norm, n, h, c.norm_eps);
  ops::linear_forward(a.gate_up.data(), a.norm2.data(), w.gate_up, n, h, 2 * f);
  ops::swiglu_forward(a.act.data(), a.gate_up.data(), n, f);
  ops::linear_forward(y, a.act.data(), w.down, n, f, h);
  ops::add_inplace(y, a.mid.data(), n * h);
}

void block_backward(float* dx, const float* x, const BlockWeights& w, const BlockWeights& g,
                    const BlockActs& a, BlockScratch& t, const LlamaConfig& c,
                    const RopeTables& rope, const BatchShape& shape) {
  const int64_t n = shape.n(), h = c.hidden_size, f = c.ffn_hidden_size, hd = c.head_dim();
  const int64_t nq = c.num_attention_heads, nkv = c.kv_heads();
  const int64_t qd = c.q_dim(), kvd = c.kv_dim(), qkvd = c.qkv_dim();

  // MLP half. The residual passes dy straight through; the norm's input gradient adds to it.
  ops::linear_backward(t.d_act.data(), g.down, dx, a.act.data(), w.down, n, f, h, false);
  ops::swiglu_backward(t.d_gate_up.data(), t.d_act.data(), a.gate_up.data(), n, f);
  ops::linear_backward(t.d_norm.data(), g.gate_up, t.d_gate_up.data(), a.norm2.data(), w.gate_up, n,
                       h, 2 * f, false);
  ops::rmsnorm_backward(dx, g.post_norm, t.d_norm.data(), a.mid.data(), w.post_norm, a.rstd2.data(),
                        n, h);  // dx is now dL/dmid

  // Attention half.
  const float* q = a.qkv.data();
  float* dq = t.d_qkv.data();
  ops::linear_backward(t.d_attn.data(), g.o_proj, dx, a.attn.data(), w.o_proj, n, qd, h, false);
  ops::attention_backward(dq, dq + qd, dq + qd + kvd, t.d_attn.data(), a.attn.data(), a.lse.data(),
                          q, q + qd, q + qd + kvd, shape.b, shape.s, nq, nkv, hd, qkvd, qd);
  ops::rope_backward(dq, rope.cos.data(), rope.sin.data(), shape.b, shape.s, nq, hd, qkvd,
                     shape.pos0);
  ops::rope_backward(dq + qd, rope.cos.data(), rope.sin.data(), shape.b, shape.s, nkv, hd, qkvd,
                     shape.pos0);
  ops::linear_backward(t.d_norm.data(), g.qkv, dq, a.norm1.data(), w.qkv, n, h, qkvd, false);
  ops::rmsnorm_backward(dx, g.input_norm, t.d_norm.data(), x, w.input_norm, a.rstd1.data(), n,
                        h);  // dx is now dL/dx
}

}  // namespace mds::model
