// One pre-norm Llama transformer block, explicit forward and backward, on one rank's shard.
//
//   mid = x + o_proj(attention(rope(qkv_proj(rmsnorm(x)))))
//   y   = mid + down_proj(silu(gate_proj(n2)) * up_proj(n2)),   n2 = rmsnorm(mid)
//
// Tensor parallelism (Megatron): qkv_proj and gate/up are column-parallel (this rank's heads
// and ffn columns), o_proj and down_proj row-parallel, their partial outputs all-reduced over
// the TP group; in backward the gradients entering the two norms are all-reduced instead. The
// norms run replicated, so their weight gradients agree on every TP rank.
// Sequence parallelism (Ulysses): x holds this rank's s tokens of each sequence; q, k, v go
// through an all-to-all to the whole sequence for 1/S of the local heads, and the attention
// output comes back the same way. RoPE uses the tokens' global positions (shape.pos0).
//
// Shapes for n = b*s local tokens, T tensor- and S sequence-parallel ranks (BlockDims):
// x, mid, y [n, h]; qkv [n, qkvd] = [q_dim/T | kv_dim/T | kv_dim/T]; attn [n, q_dim/T];
// gate_up [n, 2f/T]; act [n, f/T]. The attention core sees [b, s*S] tokens of qkvd/S columns.
// The forward saves exactly what the backward reads (BlockActs); attention keeps only its row
// log-sum-exp, never an s x s matrix. Under selective recomputation (model/recompute.h) the
// attention core's output and log-sum-exp live in the shared scratch instead, and backward
// recomputes them from the saved q, k, v.
#pragma once

#include <array>
#include <cstdint>

#include "mds/core/buffer.h"
#include "mds/model/config.h"
#include "mds/model/params.h"
#include "mds/parallel/model_comm.h"
#include "mds/parallel/ulysses.h"

namespace mds::model {

// Views of one block's tensors inside a flat buffer: the weights (of the model's element type), or
// their gradients (always fp32: Megatron's main_grad, accumulated across micro-batches).
template <typename Elem>
struct BlockWeights {
  Elem* input_norm;  // [h]
  Elem* qkv;         // [qkvd, h]: q_proj, k_proj, v_proj slices stacked (one GEMM)
  Elem* o_proj;      // [h, q_dim/T]
  Elem* post_norm;   // [h]
  Elem* gate_up;     // [2f/T, h]: gate_proj, up_proj slices stacked (one GEMM)
  Elem* down;        // [h, f/T]

  static BlockWeights in(Elem* base, const ParamTable& table, int64_t layer);
};
using BlockGrads = BlockWeights<float>;

// A block's dimensions on one rank of T x S.
struct BlockDims {
  int64_t h = 0, hd = 0;
  int64_t nq = 0, nkv = 0, f = 0;  // this TP rank's q heads, kv heads, ffn columns
  int64_t sp = 1;                  // attention core: nq/sp and nkv/sp heads, whole sequence
  int64_t qd() const { return nq * hd; }
  int64_t kvd() const { return nkv * hd; }
  int64_t qkvd() const { return qd() + 2 * kvd(); }
  static BlockDims of(const LlamaConfig& c, int64_t tp, int64_t sp);
};

// The shape of one micro-batch as this rank sees it.
struct BatchShape {
  int64_t b = 0, s = 0;  // s: this rank's tokens of each sequence
  int64_t pos0 = 0;      // global position of the first of them (sequence parallelism)
  int64_t n() const { return b * s; }
};

// The attention core's results: its output in the core's layout (S > 1 only), the same on
// this rank's tokens (o_proj's input) and the row log-sum-exp [b, nq/S, s*S].
template <typename Elem>
struct AttentionOut {
  Buffer<Elem> core_out, attn;
  Buffer<float> lse;
  explicit AttentionOut(ops::Backend& b = ops::cpu_backend()) : core_out(b), attn(b), lse(b) {}
  void resize(const BlockDims& d, const BatchShape& shape);
  int64_t allocated_bytes() const;
};

// What forward saves for backward. `core` is empty under selective recomputation. Activations
// are of the model's element type; the norms' rstd and attention's lse are always fp32.
template <typename Elem>
struct BlockActs {
  Buffer<Elem> norm1;
  Buffer<float> rstd1;
  Buffer<Elem> qkv;  // post-RoPE q, k, v as the attention core reads them
  AttentionOut<Elem> core;
  Buffer<Elem> mid, norm2;
  Buffer<float> rstd2;
  Buffer<Elem> gate_up, act;
  explicit BlockActs(ops::Backend& b = ops::cpu_backend())
      : norm1(b), rstd1(b), qkv(b), core(b), mid(b), norm2(b), rstd2(b), gate_up(b), act(b) {}
  void resize(const BlockDims& d, const BatchShape& shape, bool keep_attention = true);
  int64_t allocated_bytes() const;  // every buffer above
};

// Scratch shared by all blocks (one block runs at a time).
template <typename Elem>
struct BlockScratch {
  Buffer<Elem> qkv_local;  // forward, S > 1: q, k, v before the all-to-all
  Buffer<Elem> d_norm, d_qkv, d_qkv_core, d_attn, d_core_out, d_gate_up, d_act;
  AttentionOut<Elem> core;  // selective recomputation only: the attention core's results
  explicit BlockScratch(ops::Backend& b = ops::cpu_backend())
      : qkv_local(b),
        d_norm(b),
        d_qkv(b),
        d_qkv_core(b),
        d_attn(b),
        d_core_out(b),
        d_gate_up(b),
        d_act(b),
        core(b) {}
  void resize(const BlockDims& d, const BatchShape& shape, bool recompute_attention = false);
  int64_t allocated_bytes() const;  // every buffer above
};

// Rotary tables [max_pos, hd/2], built once per model on the host and copied to the backend.
struct RopeTables {
  Buffer<float> cos, sin;
  explicit RopeTables(const LlamaConfig& c, ops::Backend& b = ops::cpu_backend());
};

// Everything a block needs besides its weights and activations.
template <typename Elem>
struct BlockEnv {
  ops::Backend& k;  // where the buffers live and the kernels run
  const LlamaConfig& config;
  BlockDims dims;
  const RopeTables& rope;
  const parallel::ModelComm& comm;
  BlockScratch<Elem>& scratch;
  parallel::UlyssesExchange& ulysses;
  bool recompute_attention = false;  // selective: the core's results are in scratch.core
  std::array<int64_t, 3> qkv_sections() const { return {dims.qd(), dims.kvd(), dims.kvd()}; }
};

// y = block(x). x must stay alive until backward (it is the residual input).
template <typename Elem>
void block_forward(Elem* y, const Elem* x, const BlockWeights<Elem>& w, BlockActs<Elem>& a,
                   BlockEnv<Elem>& env, const BatchShape& shape);

// dx: on entry dL/dy, on return dL/dx (updated in place). Weight gradients accumulate (+=).
template <typename Elem>
void block_backward(Elem* dx, const Elem* x, const BlockWeights<Elem>& w, const BlockGrads& g,
                    const BlockActs<Elem>& a, BlockEnv<Elem>& env, const BatchShape& shape);

// Elem: the element type of the weights and activations: float, or bf16 / fp16 for Megatron's
// mixed precision (all three instantiated in block.cpp; a 16-bit Elem runs the backends'
// kernels on that storage type).

}  // namespace mds::model
