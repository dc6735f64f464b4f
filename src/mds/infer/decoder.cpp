#include "mds/infer/decoder.h"

#include <algorithm>

#include "mds/core/error.h"
#include "mds/ops/ops.h"

namespace mds::infer {

Decoder::Decoder(const model::LlamaConfig& config, std::vector<float> params, int64_t capacity)
    : cfg_(config),
      table_(config),
      params_(std::move(params)),
      capacity_(capacity),
      dims_(model::BlockDims::of(config, 1, 1)),
      rope_(config) {
  MDS_ASSERT(int64_t(params_.size()) == table_.total(), "decoder weights: {} floats, table {}",
             params_.size(), table_.total());
  MDS_ASSERT(capacity > 0 && capacity <= cfg_.max_position_embeddings,
             "cache capacity {} outside [1, max_position_embeddings {}]", capacity,
             cfg_.max_position_embeddings);
  for (int64_t l = 0; l < cfg_.num_layers; ++l) {
    blocks_.push_back(model::BlockWeights<float>::in(params_.data(), table_, l));
    k_cache_.emplace_back(size_t(capacity * dims_.kvd()));
    v_cache_.emplace_back(size_t(capacity * dims_.kvd()));
  }
  const int64_t n = kChunk, h = dims_.h;
  x_.resize(n * h);
  norm_.resize(n * h);
  rstd_.resize(n);
  qkv_.resize(n * dims_.qkvd());
  attn_.resize(n * dims_.qd());
  out_.resize(n * h);
  gate_up_.resize(n * 2 * dims_.f);
  act_.resize(n * dims_.f);
}

void Decoder::layer(int64_t l, int64_t n, int64_t pos) {
  const model::BlockWeights<float>& w = blocks_[size_t(l)];
  const int64_t h = dims_.h, f = dims_.f, hd = dims_.hd;
  const int64_t qd = dims_.qd(), kvd = dims_.kvd(), qkvd = dims_.qkvd();
  const float eps = cfg_.norm_eps;
  const float *cos = rope_.cos.data(), *sin = rope_.sin.data();
  float* x = x_.data();

  // Attention half: x += o_proj(attention(rope(q), cache of rope(k), v)).
  ops::rmsnorm_forward(norm_.data(), rstd_.data(), x, w.input_norm, n, h, eps);
  ops::linear_forward(qkv_.data(), norm_.data(), w.qkv, n, h, qkvd);
  ops::rope_forward(qkv_.data(), cos, sin, 1, n, dims_.nq, hd, qkvd, pos);
  ops::rope_forward(qkv_.data() + qd, cos, sin, 1, n, dims_.nkv, hd, qkvd, pos);
  float *kc = k_cache_[size_t(l)].data(), *vc = v_cache_[size_t(l)].data();
  for (int64_t t = 0; t < n; ++t) {
    const float* row = qkv_.data() + t * qkvd;
    std::copy_n(row + qd, kvd, kc + (pos + t) * kvd);
    std::copy_n(row + qd + kvd, kvd, vc + (pos + t) * kvd);
  }
  ops::attention_decode(attn_.data(), qkv_.data(), kc, vc, n, pos, dims_.nq, dims_.nkv, hd, qkvd,
                        kvd, qd);
  ops::linear_forward(out_.data(), attn_.data(), w.o_proj, n, qd, h);
  ops::add_inplace(x, out_.data(), n * h);

  // MLP half: x += down(silu(gate) * up).
  ops::rmsnorm_forward(norm_.data(), rstd_.data(), x, w.post_norm, n, h, eps);
  ops::linear_forward(gate_up_.data(), norm_.data(), w.gate_up, n, h, 2 * f);
  ops::swiglu_forward(act_.data(), gate_up_.data(), n, f);
  ops::linear_forward(out_.data(), act_.data(), w.down, n, f, h);
  ops::add_inplace(x, out_.data(), n * h);
}

void Decoder::head(float* logits, const float* x, int64_t n) {
  const int64_t h = dims_.h;
  ops::rmsnorm_forward(norm_.data(), rstd_.data(), x, param("model.norm.weight"), n, h,
                       cfg_.norm_eps);
  // The first vocab_size rows of lm_head: the padding rows belong to no token.
  ops::linear_forward(logits, norm_.data(), param("lm_head.weight"), n, h, cfg_.vocab_size);
}

const float* Decoder::forward(const int32_t* tokens, int64_t m, LogitRows rows) {
  MDS_ASSERT(m > 0, "forward of {} tokens", m);
  MDS_ASSERT(length_ + m <= capacity_, "{} tokens after {} overflow the cache of {}", m, length_,
             capacity_);
  const int64_t h = dims_.h, vocab = cfg_.vocab_size;
  logits_.resize(size_t((rows == LogitRows::all ? m : 1) * vocab));
  for (int64_t c = 0; c < m; c += kChunk) {
    const int64_t n = std::min(kChunk, m - c);
    for (int64_t t = 0; t < n; ++t)
      MDS_ASSERT(tokens[c + t] >= 0 && tokens[c + t] < vocab, "token id {} outside [0, {})",
                 tokens[c + t], vocab);
    ops::embedding_forward(x_.data(), tokens + c, param("model.embed_tokens.weight"), n, h);
    for (int64_t l = 0; l < cfg_.num_layers; ++l) layer(l, n, length_);
    length_ += n;
    if (rows == LogitRows::all)
      head(logits_.data() + c * vocab, x_.data(), n);
    else if (c + n == m)
      head(logits_.data(), x_.data() + (n - 1) * h, 1);
  }
  return logits_.data();
}

}  // namespace mds::infer
