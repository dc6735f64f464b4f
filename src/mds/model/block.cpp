#include "mds/model/block.h"

#include <vector>

#include "mds/ops/ops.h"

namespace mds::model {

template <typename Elem>
BlockWeights<Elem> BlockWeights<Elem>::in(Elem* base, const ParamTable& table, int64_t layer) {
  const std::string l = "model.layers." + std::to_string(layer) + ".";
  auto at = [&](const char* name) { return base + table.at(l + name).offset; };
  return {at("input_layernorm.weight"),  at("self_attn.q_proj.weight"),
          at("self_attn.o_proj.weight"), at("post_attention_layernorm.weight"),
          at("mlp.gate_proj.weight"),    at("mlp.down_proj.weight")};
}

BlockDims BlockDims::of(const LlamaConfig& c, int64_t tp, int64_t sp) {
  BlockDims d;
  d.h = c.hidden_size;
  d.hd = c.head_dim();
  d.nq = c.num_attention_heads / tp;
  d.nkv = c.kv_heads() / tp;
  d.f = c.ffn_hidden_size / tp;
  d.sp = sp;
  return d;
}

template <typename Elem>
void AttentionOut<Elem>::resize(const BlockDims& d, const BatchShape& shape) {
  const int64_t n = shape.n();
  core_out.resize(d.sp > 1 ? n * d.qd() : 0);
  attn.resize(n * d.qd());
  lse.resize(n * d.nq);
}

namespace {
template <typename... V>
int64_t capacity_bytes(const V&... v) {
  return ((v.capacity() * int64_t(sizeof(*v.data()))) + ...);
}
}  // namespace

template <typename Elem>
int64_t AttentionOut<Elem>::allocated_bytes() const {
  return capacity_bytes(core_out, attn, lse);
}

template <typename Elem>
void BlockActs<Elem>::resize(const BlockDims& d, const BatchShape& shape, bool keep_attention) {
  const int64_t n = shape.n();
  norm1.resize(n * d.h);
  rstd1.resize(n);
  qkv.resize(n * d.qkvd());  // the same count in either layout
  if (keep_attention) core.resize(d, shape);
  mid.resize(n * d.h);
  norm2.resize(n * d.h);
  rstd2.resize(n);
  gate_up.resize(n * 2 * d.f);
  act.resize(n * d.f);
}

template <typename Elem>
int64_t BlockActs<Elem>::allocated_bytes() const {
  return capacity_bytes(norm1, rstd1, qkv, mid, norm2, rstd2, gate_up, act) +
         core.allocated_bytes();
}

template <typename Elem>
void BlockScratch<Elem>::resize(const BlockDims& d, const BatchShape& shape,
                                bool recompute_attention) {
  const int64_t n = shape.n(), split = d.sp > 1 ? n : 0;
  qkv_local.resize(split * d.qkvd());
  d_norm.resize(n * d.h);
  d_qkv.resize(n * d.qkvd());
  d_qkv_core.resize(split * d.qkvd());
  d_attn.resize(n * d.qd());
  d_core_out.resize(split * d.qd());
  d_gate_up.resize(n * 2 * d.f);
  d_act.resize(n * d.f);
  if (recompute_attention) core.resize(d, shape);
}

template <typename Elem>
int64_t BlockScratch<Elem>::allocated_bytes() const {
  return capacity_bytes(qkv_local, d_norm, d_qkv, d_qkv_core, d_attn, d_core_out, d_gate_up,
                        d_act) +
         core.allocated_bytes();
}

RopeTables::RopeTables(const LlamaConfig& c, ops::Backend& b) : cos(b), sin(b) {
  const int64_t n = c.max_position_embeddings * (c.head_dim() / 2);
  std::vector<float> host_cos(static_cast<size_t>(n)), host_sin(static_cast<size_t>(n));
  ops::rope_tables(host_cos.data(), host_sin.data(), c.max_position_embeddings, c.head_dim(),
                   c.rope_theta);
  cos.resize(n);
  sin.resize(n);
  cos.upload(host_cos.data(), n);
  sin.upload(host_sin.data(), n);
}

namespace {

// Where a block's attention core results live: its own activations, or the shared scratch
// under selective recomputation.
template <typename Elem>
AttentionOut<Elem>& attention_out(BlockActs<Elem>& a, BlockEnv<Elem>& env) {
  return env.recompute_attention ? env.scratch.core : a.core;
}
template <typename Elem>
const AttentionOut<Elem>& attention_out(const BlockActs<Elem>& a, BlockEnv<Elem>& env) {
  return env.recompute_attention ? env.scratch.core : a.core;
}

// The attention core on the gathered q|k|v (the core's layout), and its output brought back
// to this rank's tokens (Ulysses, S > 1).
template <typename Elem>
void attention_core(AttentionOut<Elem>& o, const Elem* q, BlockEnv<Elem>& env,
                    const BatchShape& shape) {
  const BlockDims& d = env.dims;
  const int64_t S = d.sp, qd = d.qd(), kvd = d.kvd(), qkvd = d.qkvd();
  Elem* core_out = S > 1 ? o.core_out.data() : o.attn.data();
  env.k.attention_forward(core_out, o.lse.data(), q, q + qd / S, q + (qd + kvd) / S, shape.b,
                          shape.s * S, d.nq / S, d.nkv / S, d.hd, qkvd / S, qd / S);
  if (S > 1)
    env.ulysses.heads_to_seq(*env.comm.sp, o.attn.data(), core_out, shape.b, shape.s,
                             std::array<int64_t, 1>{qd});
}

}  // namespace

template <typename Elem>
void block_forward(Elem* y, const Elem* x, const BlockWeights<Elem>& w, BlockActs<Elem>& a,
                   BlockEnv<Elem>& env, const BatchShape& shape) {
  const BlockDims& d = env.dims;
  const int64_t n = shape.n(), h = d.h, f = d.f, hd = d.hd, S = d.sp;
  const int64_t qd = d.qd(), qkvd = d.qkvd();
  const float eps = env.config.norm_eps;
  const float *cos = env.rope.cos.data(), *sin = env.rope.sin.data();

  // Attention half: mid = x + o_proj(attn(rope(q), rope(k), v)).
  Elem* qkv = S > 1 ? env.scratch.qkv_local.data() : a.qkv.data();
  env.k.rmsnorm_forward(a.norm1.data(), a.rstd1.data(), x, w.input_norm, n, h, eps);
  env.k.linear_forward(qkv, a.norm1.data(), w.qkv, n, h, qkvd);
  env.k.rope_forward(qkv, cos, sin, shape.b, shape.s, d.nq, hd, qkvd, shape.pos0);
  env.k.rope_forward(qkv + qd, cos, sin, shape.b, shape.s, d.nkv, hd, qkvd, shape.pos0);
  if (S > 1)
    env.ulysses.seq_to_heads(*env.comm.sp, a.qkv.data(), qkv, shape.b, shape.s, env.qkv_sections());
  AttentionOut<Elem>& core = attention_out(a, env);
  attention_core(core, a.qkv.data(), env, shape);
  env.k.linear_forward(a.mid.data(), core.attn.data(), w.o_proj, n, qd, h);
  env.comm.tp_all_reduce(a.mid.data(), n * h);  // row-parallel: sum the ranks' partial outputs

  // MLP half: y = mid + down(silu(gate) * up). The residual add and the norm after it are one
  // kernel (one pass over mid on a GPU): mid += x, norm2 = rmsnorm(mid).
  env.k.rmsnorm_residual_forward(a.norm2.data(), a.mid.data(), a.rstd2.data(), a.mid.data(), x,
                                 w.post_norm, n, h, eps);
  env.k.linear_forward(a.gate_up.data(), a.norm2.data(), w.gate_up, n, h, 2 * f);
  env.k.swiglu_forward(a.act.data(), a.gate_up.data(), n, f);
  env.k.linear_forward(y, a.act.data(), w.down, n, f, h);
  env.comm.tp_all_reduce(y, n * h);
  env.k.add_inplace(y, a.mid.data(), n * h);
}

template <typename Elem>
void block_backward(Elem* dx, const Elem* x, const BlockWeights<Elem>& w, const BlockGrads& g,
                    const BlockActs<Elem>& a, BlockEnv<Elem>& env, const BatchShape& shape) {
  const BlockDims& d = env.dims;
  const int64_t n = shape.n(), h = d.h, f = d.f, hd = d.hd, S = d.sp;
  const int64_t qd = d.qd(), kvd = d.kvd(), qkvd = d.qkvd();
  const float *cos = env.rope.cos.data(), *sin = env.rope.sin.data();
  BlockScratch<Elem>& t = env.scratch;

  // MLP half. The residual passes dy straight through; the norm's input gradient adds to it.
  env.k.linear_backward(t.d_act.data(), g.down, dx, a.act.data(), w.down, n, f, h, false);
  env.k.swiglu_backward(t.d_gate_up.data(), t.d_act.data(), a.gate_up.data(), n, f);
  env.k.linear_backward(t.d_norm.data(), g.gate_up, t.d_gate_up.data(), a.norm2.data(), w.gate_up,
                        n, h, 2 * f, false);
  env.comm.tp_all_reduce(t.d_norm.data(), n * h);  // column-parallel input: sum over ranks
  env.k.rmsnorm_backward(dx, g.post_norm, t.d_norm.data(), a.mid.data(), w.post_norm,
                         a.rstd2.data(), n, h);  // dx is now dL/dmid

  // Attention half, the core in its own layout (recomputed first under selective recompute).
  const AttentionOut<Elem>& core = attention_out(a, env);
  if (env.recompute_attention) attention_core(t.core, a.qkv.data(), env, shape);
  env.k.linear_backward(t.d_attn.data(), g.o_proj, dx, core.attn.data(), w.o_proj, n, qd, h, false);
  const Elem* d_core_out = t.d_attn.data();
  if (S > 1) {
    env.ulysses.seq_to_heads(*env.comm.sp, t.d_core_out.data(), t.d_attn.data(), shape.b, shape.s,
                             std::array<int64_t, 1>{qd});
    d_core_out = t.d_core_out.data();
  }
  const Elem* q = a.qkv.data();
  Elem* dq = S > 1 ? t.d_qkv_core.data() : t.d_qkv.data();
  env.k.attention_backward(dq, dq + qd / S, dq + (qd + kvd) / S, d_core_out,
                           S > 1 ? core.core_out.data() : core.attn.data(), core.lse.data(), q,
                           q + qd / S, q + (qd + kvd) / S, shape.b, shape.s * S, d.nq / S,
                           d.nkv / S, hd, qkvd / S, qd / S);
  if (S > 1)
    env.ulysses.heads_to_seq(*env.comm.sp, t.d_qkv.data(), dq, shape.b, shape.s,
                             env.qkv_sections());
  Elem* dqkv = t.d_qkv.data();
  env.k.rope_backward(dqkv, cos, sin, shape.b, shape.s, d.nq, hd, qkvd, shape.pos0);
  env.k.rope_backward(dqkv + qd, cos, sin, shape.b, shape.s, d.nkv, hd, qkvd, shape.pos0);
  env.k.linear_backward(t.d_norm.data(), g.qkv, dqkv, a.norm1.data(), w.qkv, n, h, qkvd, false);
  env.comm.tp_all_reduce(t.d_norm.data(), n * h);
  env.k.rmsnorm_backward(dx, g.input_norm, t.d_norm.data(), x, w.input_norm, a.rstd1.data(), n,
                         h);  // dx is now dL/dx
}

#define MDS_BLOCK_INSTANTIATE(Elem)                                                              \
  template struct BlockWeights<Elem>;                                                            \
  template struct AttentionOut<Elem>;                                                            \
  template struct BlockActs<Elem>;                                                               \
  template struct BlockScratch<Elem>;                                                            \
  template void block_forward(Elem*, const Elem*, const BlockWeights<Elem>&, BlockActs<Elem>&,   \
                              BlockEnv<Elem>&, const BatchShape&);                               \
  template void block_backward(Elem*, const Elem*, const BlockWeights<Elem>&, const BlockGrads&, \
                               const BlockActs<Elem>&, BlockEnv<Elem>&, const BatchShape&);
MDS_BLOCK_INSTANTIATE(float)
MDS_BLOCK_INSTANTIATE(bf16)
MDS_BLOCK_INSTANTIATE(fp16)

}  // namespace mds::model
