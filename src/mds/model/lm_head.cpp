#include "mds/model/lm_head.h"

#include <algorithm>
#include <cstring>

#include "mds/ops/ops.h"

namespace mds::model {

void LMHead::norm(const float* x, int64_t n, const float* norm_w, const LlamaConfig& c,
                  int64_t cols) {
  const int64_t h = c.hidden_size, m = std::min(n, kChunk);
  xn_.resize(n * h);
  rstd_.resize(n);
  losses_.resize(n);
  logits_.resize(m * cols);
  row_max_.resize(m);
  target_logit_.resize(m);
  sum_exp_.resize(m);
  ops::rmsnorm_forward(xn_.data(), rstd_.data(), x, norm_w, n, h, c.norm_eps);
}

void LMHead::chunk_loss(int64_t r, int64_t m, const int32_t* targets, bool grad, float dscale,
                        const LlamaConfig& c, const parallel::ModelComm& comm) {
  const int64_t cols = c.padded_vocab_size / comm.tp_size();
  float* logits = logits_.data();
  if (comm.tp_size() == 1) {  // the whole vocabulary here: one fused pass
    if (grad)
      ops::cross_entropy_forward_backward(losses_.data() + r, logits, logits, targets + r, m, cols,
                                          c.vocab_size, dscale);
    else
      ops::cross_entropy_forward(losses_.data() + r, logits, targets + r, m, cols, c.vocab_size);
    return;
  }
  const int64_t begin = comm.tp_rank() * cols;
  ops::cross_entropy_local_max(row_max_.data(), target_logit_.data(), logits, targets + r, m, cols,
                               begin, c.vocab_size);
  comm.tp_all_reduce(row_max_.data(), m, dist::ReduceOp::max);
  comm.tp_all_reduce(target_logit_.data(), m);  // only the owner's is nonzero
  ops::cross_entropy_local_sum_exp(sum_exp_.data(), grad ? logits : nullptr, logits,
                                   row_max_.data(), m, cols, begin, c.vocab_size);
  comm.tp_all_reduce(sum_exp_.data(), m);
  ops::cross_entropy_finish(losses_.data() + r, grad ? logits : nullptr, row_max_.data(),
                            sum_exp_.data(), target_logit_.data(), targets + r, m, cols, begin,
                            dscale);
}

void LMHead::prepare(int64_t n, const LlamaConfig& c, int64_t tp_size) {
  const int64_t h = c.hidden_size, m = std::min(n, kChunk);
  xn_.resize(n * h);
  dxn_.resize(n * h);
  rstd_.resize(n);
  losses_.resize(n);
  logits_.resize(m * (c.padded_vocab_size / tp_size));
  row_max_.resize(m);
  target_logit_.resize(m);
  sum_exp_.resize(m);
}

int64_t LMHead::allocated_bytes() const {
  auto bytes = [](const auto& v) { return int64_t(v.capacity() * sizeof(v[0])); };
  return bytes(xn_) + bytes(rstd_) + bytes(dxn_) + bytes(logits_) + bytes(losses_) +
         bytes(row_max_) + bytes(target_logit_) + bytes(sum_exp_);
}

double LMHead::sum_losses(int64_t n) const {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += losses_[i];
  return sum;
}

double LMHead::forward(const float* x, const int32_t* targets, int64_t n, const float* norm_w,
                       const float* head_w, const LlamaConfig& c, const parallel::ModelComm& comm) {
  const int64_t h = c.hidden_size, cols = c.padded_vocab_size / comm.tp_size();
  norm(x, n, norm_w, c, cols);
  for (int64_t r = 0; r < n; r += kChunk) {
    const int64_t m = std::min(kChunk, n - r);
    ops::linear_forward(logits_.data(), xn_.data() + r * h, head_w, m, h, cols);
    chunk_loss(r, m, targets, false, 0.0f, c, comm);
  }
  return sum_losses(n);
}

double LMHead::forward_backward(float* dx, float* d_norm_w, float* d_head_w, const float* x,
                                const int32_t* targets, int64_t n, const float* norm_w,
                                const float* head_w, float loss_weight, const LlamaConfig& c,
                                const parallel::ModelComm& comm) {
  const int64_t h = c.hidden_size, cols = c.padded_vocab_size / comm.tp_size();
  norm(x, n, norm_w, c, cols);
  dxn_.resize(n * h);
  for (int64_t r = 0; r < n; r += kChunk) {
    const int64_t m = std::min(kChunk, n - r);
    const float* xn = xn_.data() + r * h;
    ops::linear_forward(logits_.data(), xn, head_w, m, h, cols);
    chunk_loss(r, m, targets, true, loss_weight, c, comm);  // logits_ now holds dlogits
    ops::linear_backward(dxn_.data() + r * h, d_head_w, logits_.data(), xn, head_w, m, h, cols,
                         false);
  }
  comm.tp_all_reduce(dxn_.data(), n * h);  // each rank's vocabulary slice contributes a part
  std::memset(dx, 0, sizeof(float) * n * h);
  ops::rmsnorm_backward(dx, d_norm_w, dxn_.data(), x, norm_w, rstd_.data(), n, h);
  return sum_losses(n);
}

}  // namespace mds::model
