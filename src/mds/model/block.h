// One pre-norm Llama transformer block, explicit forward and backward.
//
//   mid = x + o_proj(attention(rope(qkv_proj(rmsnorm(x)))))
//   y   = mid + down_proj(silu(gate_proj(n2)) * up_proj(n2)),   n2 = rmsnorm(mid)
//
// Shapes for n = b*s tokens: x, mid, y [n, h]; qkv [n, q_dim + 2 kv_dim]; attn [n, q_dim];
// gate_up [n, 2f]; act [n, f]. The forward saves exactly what the backward reads (BlockActs);
// attention keeps only its row log-sum-exp, never an s x s matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "mds/model/config.h"
#include "mds/model/params.h"

namespace mds::model {

// Views of one block's tensors inside a flat buffer (the weights, or their gradients).
struct BlockWeights {
  float* input_norm;  // [h]
  float* qkv;         // [q_dim + 2 kv_dim, h]: q_proj, k_proj, v_proj stacked (one GEMM)
  float* o_proj;      // [h, q_dim]
  float* post_norm;   // [h]
  float* gate_up;     // [2f, h]: gate_proj, up_proj stacked (one GEMM)
  float* down;        // [h, f]

  static BlockWeights in(float* base, const ParamTable& table, int64_t layer);
};

// The shape of one micro-batch as this rank sees it.
struct BatchShape {
  int64_t b = 0, s = 0;
  int64_t pos0 = 0;  // global position of the first token (sequence parallelism shifts it)
  int64_t n() const { return b * s; }
};

// What forward saves for backward.
struct BlockActs {
  std::vector<float> norm1, rstd1, qkv, attn, lse, mid, norm2, rstd2, gate_up, act;
  void resize(const LlamaConfig& c, const BatchShape& shape);
};

// Scratch gradients, shared by all blocks (backward runs one block at a time).
struct BlockScratch {
  std::vector<float> d_norm, d_qkv, d_attn, d_gate_up, d_act;
  void resize(const LlamaConfig& c, const BatchShape& shape);
};

// Rotary tables [max_pos, hd/2], built once per model.
struct RopeTables {
  std::vector<float> cos, sin;
  explicit RopeTables(const LlamaConfig& c);
};

// y = block(x). x must stay alive until backward (it is the residual input).
void block_forward(float* y, const float* x, const BlockWeights& w, BlockActs& a,
                   const LlamaConfig& c, const RopeTables& rope, const BatchShape& shape);

// dx: on entry dL/dy, on return dL/dx (updated in place). Weight gradients accumulate (+=).
void block_backward(float* dx, const float* x, const BlockWeights& w, const BlockWeights& g,
                    const BlockActs& a, BlockScratch& t, const LlamaConfig& c,
                    const RopeTables& rope, const BatchShape& shape);

}  // namespace mds::model
