#include "mds/model/lm_head.h"

#include <algorithm>
#include <cstring>

#include "mds/ops/ops.h"

namespace mds::model {

void LMHead::norm(const float* x, int64_t n, const float* norm_w, const LlamaConfig& c) {
  const int64_t h = c.hidden_size;
  xn_.resize(n * h);
  rstd_.resize(n);
  losses_.resize(n);
  logits_.resize(std::min(n, kChunk) * c.padded_vocab_size);
  ops::rmsnorm_forward(xn_.data(), rstd_.data(), x, norm_w, n, h, c.norm_eps);
}

double LMHead::forward(const float* x, const int32_t* targets, int64_t n, const float* norm_w,
                       const float* head_w, const LlamaConfig& c) {
  const int64_t h = c.hidden_size, vpad = c.padded_vocab_size;
  norm(x, n, norm_w, c);
  for (int64_t r = 0; r < n; r += kChunk) {
    const int64_t m = std::min(kChunk, n - r);
    ops::linear_forward(logits_.data(), xn_.data() + r * h, head_w, m, h, vpad);
    ops::cross_entropy_forward(losses_.data() + r, logits_.data(), targets + r, m, vpad,
                               c.vocab_size);
  }
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += losses_[i];
  return sum;
}

double LMHead::forward_backward(float* dx, float* d_norm_w, float* d_head_w, const float* x,
                                const int32_t* targets, int64_t n, const float* norm_w,
                                const float* head_w, float loss_weight, const LlamaConfig& c) {
  const int64_t h = c.hidden_size, vpad = c.padded_vocab_size;
  norm(x, n, norm_w, c);
  dxn_.resize(n * h);
  for (int64_t r = 0; r < n; r += kChunk) {
    const int64_t m = std::min(kChunk, n - r);
    float* logits = logits_.data();  // becomes dlogits in place
    const float* xn = xn_.data() + r * h;
    ops::linear_forward(logits, xn, head_w, m, h, vpad);
    ops::cross_entropy_forward_backward(losses_.data() + r, logits, logits, targets + r, m, vpad,
                                        c.vocab_size, loss_weight);
    ops::linear_backward(dxn_.data() + r * h, d_head_w, logits, xn, head_w, m, h, vpad, false);
  }
  std::memset(dx, 0, sizeof(float) * n * h);
  ops::rmsnorm_backward(dx, d_norm_w, dxn_.data(), x, norm_w, rstd_.data(), n, h);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += losses_[i];
  return sum;
}

}  // namespace mds::model
