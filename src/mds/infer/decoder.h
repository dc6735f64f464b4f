// The Llama forward for inference: tokens go through the model once, their keys and values stay
// in a cache, and each later token attends to that cache instead of recomputing the prefix.
//
//   KV cache, per layer: k, v [capacity, nkv, hd]  (post-RoPE keys, as attention reads them)
//   forward(tokens [m]) at positions p = length() .. length()+m-1:
//     x = embed(tokens);  per layer: qkv = rmsnorm(x) @ Wqkv^T, RoPE at p, K/V rows -> cache,
//     x += o_proj(attention_decode(q, cache)),  x += down(swiglu(rmsnorm(x) @ Wgu^T));
//     logits = rmsnorm(x) @ lm_head[:vocab]^T
// The same kernels and the same order of operations as the training forward (model/block.cpp),
// so a cached decode agrees with a full recomputation to rounding. One sequence, one rank: the
// whole model's weights (model::ParamTable of the unsplit model) in one flat buffer.
// Prompts are processed kChunk tokens at a time, which bounds the scratch memory.
#pragma once

#include <cstdint>
#include <vector>

#include "mds/model/block.h"
#include "mds/model/config.h"
#include "mds/model/params.h"

namespace mds::infer {

// Which rows of logits forward() computes.
enum class LogitRows { last, all };

class Decoder {
 public:
  static constexpr int64_t kChunk = 128;

  // params: laid out by model::ParamTable(config) (a whole, unsplit model), moved in.
  // capacity: the positions the cache holds, at most config.max_position_embeddings.
  Decoder(const model::LlamaConfig& config, std::vector<float> params, int64_t capacity);
  Decoder(const Decoder&) = delete;  // holds views into its own buffer
  Decoder& operator=(const Decoder&) = delete;

  const model::LlamaConfig& config() const { return cfg_; }
  int64_t capacity() const { return capacity_; }
  int64_t length() const { return length_; }  // tokens in the cache
  void reset() { length_ = 0; }               // forget them (the buffers stay allocated)

  // Runs tokens [m] (ids < vocab_size) at positions length() .. length()+m-1 and appends their
  // keys and values to the cache (length() + m must not exceed capacity()). Returns logits over
  // the vocabulary, vocab_size columns: [m, vocab] rows for LogitRows::all, else the last
  // token's row. Valid until the next call.
  const float* forward(const int32_t* tokens, int64_t m, LogitRows rows = LogitRows::last);

 private:
  model::LlamaConfig cfg_;
  model::ParamTable table_;
  std::vector<float> params_;
  int64_t capacity_, length_ = 0;
  model::BlockDims dims_;
  std::vector<model::BlockWeights<float>> blocks_;
  model::RopeTables rope_;
  std::vector<std::vector<float>> k_cache_, v_cache_;  // per layer [capacity, nkv * hd]
  // Scratch for one chunk of n <= kChunk tokens.
  std::vector<float> x_, norm_, rstd_, qkv_, attn_, out_, gate_up_, act_;
  std::vector<float> logits_;

  void layer(int64_t l, int64_t n, int64_t pos);        // x_ <- block l (x_)
  void head(float* logits, const float* x, int64_t n);  // logits [n, vocab]
  const float* param(const char* name) const { return params_.data() + table_.at(name).offset; }
};

}  // namespace mds::infer
