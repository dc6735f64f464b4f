// A Llama model on one rank: flat parameter and gradient buffers (see params.h), the
// embedding, the transformer blocks and the LM head, with explicit forward and backward.
//
//   tokens [b, s] -> embed [n, h] -> L x block -> final norm -> head [n, vpad] -> CE(targets)
//
// The residual stream after every block is kept (L+1 buffers of [n, h]) together with each
// block's saved activations; backward walks the blocks in reverse with one gradient buffer.
#pragma once

#include <cstdint>
#include <vector>

#include "mds/model/block.h"
#include "mds/model/config.h"
#include "mds/model/lm_head.h"
#include "mds/model/params.h"

namespace mds::model {

class LlamaModel {
 public:
  explicit LlamaModel(const LlamaConfig& config);
  LlamaModel(const LlamaModel&) = delete;  // holds views into its own buffers
  LlamaModel& operator=(const LlamaModel&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  const ParamTable& table() const { return table_; }
  std::vector<float>& params() { return params_; }
  const std::vector<float>& params() const { return params_; }
  std::vector<float>& grads() { return grads_; }

  // N(0, init_std) for matrices (std/sqrt(2L) for o_proj and down_proj), ones for norms.
  // Each tensor is drawn from its own stream keyed by its name, element by element, so the
  // weights never depend on how the model is later cut across ranks.
  void init_weights(uint64_t seed);
  void zero_grads();

  // One micro-batch of b sequences of s tokens. Returns the mean token loss; the gradients of
  // loss_weight x (mean loss) accumulate into grads() (loss_weight = 1/micro-batches per step).
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t s,
                          float loss_weight);
  // The mean token loss only (evaluation).
  double forward_loss(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t s);

 private:
  LlamaConfig cfg_;
  ParamTable table_;
  std::vector<float> params_, grads_;  // fixed size: the views below point into them
  std::vector<BlockWeights> block_params_, block_grads_;  // per layer, built once
  RopeTables rope_;
  BatchShape shape_;
  std::vector<std::vector<float>> resid_;  // resid_[i]: input of block i; resid_[L]: to the head
  std::vector<BlockActs> acts_;
  BlockScratch scratch_;
  std::vector<float> d_resid_;
  LMHead head_;

  void prepare(int64_t b, int64_t s);
  void forward_blocks(const int32_t* tokens);
  float* param(const char* name) { return params_.data() + table_.at(name).offset; }
  float* grad(const char* name) { return grads_.data() + table_.at(name).offset; }
};

}  // namespace mds::model
