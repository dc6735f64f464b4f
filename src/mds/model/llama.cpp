#include "mds/model/llama.h"

#include <algorithm>

#include "mds/core/rng.h"
#include "mds/ops/ops.h"

namespace mds::model {

LlamaModel::LlamaModel(const LlamaConfig& config)
    : cfg_(config),
      table_(config),
      params_(table_.total()),
      grads_(table_.total()),
      rope_(config),
      acts_(config.num_layers) {
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    block_params_.push_back(BlockWeights::in(params_.data(), table_, l));
    block_grads_.push_back(BlockWeights::in(grads_.data(), table_, l));
  }
}

void LlamaModel::init_weights(uint64_t seed) {
  for (const ParamInfo& p : table_.params()) {
    float* w = params_.data() + p.offset;
    if (p.init_std == 0.0f)
      std::fill(w, w + p.numel, 1.0f);
    else
      fill_normal(w, p.numel, p.init_std, seed, stream_id(p.name));
  }
}

void LlamaModel::zero_grads() {
  std::fill(grads_.begin(), grads_.end(), 0.0f);
}

void LlamaModel::prepare(int64_t b, int64_t s) {
  if (shape_.b == b && shape_.s == s) return;
  shape_ = {b, s, 0};
  resid_.assign(cfg_.num_layers + 1, std::vector<float>(shape_.n() * cfg_.hidden_size));
  for (BlockActs& a : acts_) a.resize(cfg_, shape_);
  scratch_.resize(cfg_, shape_);
  d_resid_.resize(shape_.n() * cfg_.hidden_size);
}

void LlamaModel::forward_blocks(const int32_t* tokens) {
  ops::embedding_forward(resid_[0].data(), tokens, param("model.embed_tokens.weight"), shape_.n(),
                         cfg_.hidden_size);
  for (int64_t l = 0; l < cfg_.num_layers; ++l)
    block_forward(resid_[l + 1].data(), resid_[l].data(), block_params_[l], acts_[l], cfg_, rope_,
                  shape_);
}

double LlamaModel::forward_loss(const int32_t* tokens, const int32_t* targets, int64_t b,
                                int64_t s) {
  prepare(b, s);
  forward_blocks(tokens);
  const double sum = head_.forward(resid_.back().data(), targets, shape_.n(),
                                   param("model.norm.weight"), param("lm_head.weight"), cfg_);
  return sum / double(shape_.n());
}

double LlamaModel::forward_backward(const int32_t* tokens, const int32_t* targets, int64_t b,
                                    int64_t s, float loss_weight) {
  prepare(b, s);
  forward_blocks(tokens);
  const int64_t n = shape_.n();
  float* dx = d_resid_.data();
  const double sum = head_.forward_backward(
      dx, grad("model.norm.weight"), grad("lm_head.weight"), resid_.back().data(), targets, n,
      param("model.norm.weight"), param("lm_head.weight"), loss_weight / float(n), cfg_);
  for (int64_t l = cfg_.num_layers - 1; l >= 0; --l)
    block_backward(dx, resid_[l].data(), block_params_[l], block_grads_[l], acts_[l], scratch_,
                   cfg_, rope_, shape_);
  ops::embedding_backward(grad("model.embed_tokens.weight"), dx, tokens, n, cfg_.hidden_size);
  return sum / double(n);
}

}  // namespace mds::model
