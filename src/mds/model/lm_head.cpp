#include "mds/model/lm_head.h"

#include <algorithm>
#include <type_traits>

#include "mds/ops/targets.h"

namespace mds::model {

int64_t head_chunk_rows(ops::Device device, int64_t cols, int64_t elem_bytes) {
  using Head = LMHead<float>;
  if (device == ops::Device::cpu) return Head::kChunk;
  constexpr int64_t kDeviceChunkBytes = int64_t{512} << 20;
  const int64_t fit = kDeviceChunkBytes / std::max<int64_t>(1, cols * elem_bytes);
  return std::max(Head::kChunk, fit / Head::kChunk * Head::kChunk);
}

template <typename Elem>
void LMHead<Elem>::norm(const Elem* x, const int32_t* targets, int64_t n, const Elem* norm_w,
                        const LlamaConfig& c, int64_t cols) {
  const int64_t h = c.hidden_size, m = std::min(n, chunk_rows(cols));
  xn_.resize(n * h);
  rstd_.resize(n);
  losses_.resize(n);
  logits_.resize(m * cols);
  row_max_.resize(m);
  target_logit_.resize(m);
  sum_exp_.resize(m);
  ops::check_targets(targets, n, c.vocab_size);  // here, once: the GPU kernels do not check
  targets_.resize(n);
  targets_.upload(targets, n);
  k_.rmsnorm_forward(xn_.data(), rstd_.data(), x, norm_w, n, h, c.norm_eps);
}

template <typename Elem>
void LMHead<Elem>::chunk_loss(int64_t r, int64_t m, bool grad, float dscale, const LlamaConfig& c,
                              const parallel::ModelComm& comm) {
  const int64_t cols = c.padded_vocab_size / comm.tp_size();
  const int32_t* targets = targets_.data();
  Elem* logits = logits_.data();
  if (comm.tp_size() == 1) {  // the whole vocabulary here: one fused pass
    if (grad)
      k_.cross_entropy_forward_backward(losses_.data() + r, logits, logits, targets + r, m, cols,
                                        c.vocab_size, dscale);
    else
      k_.cross_entropy_forward(losses_.data() + r, logits, targets + r, m, cols, c.vocab_size);
    return;
  }
  const int64_t begin = comm.tp_rank() * cols;
  k_.cross_entropy_local_max(row_max_.data(), target_logit_.data(), logits, targets + r, m, cols,
                             begin, c.vocab_size);
  comm.tp_all_reduce(row_max_.data(), m, dist::ReduceOp::max);
  comm.tp_all_reduce(target_logit_.data(), m);  // only the owner's is nonzero
  if constexpr (std::is_same_v<Elem, float>) {  // the exps kept in place of the logits
    k_.cross_entropy_local_sum_exp(sum_exp_.data(), grad ? logits : nullptr, logits,
                                   row_max_.data(), m, cols, begin, c.vocab_size);
    comm.tp_all_reduce(sum_exp_.data(), m);
    k_.cross_entropy_finish(losses_.data() + r, grad ? logits : nullptr, row_max_.data(),
                            sum_exp_.data(), target_logit_.data(), targets + r, m, cols, begin,
                            dscale);
  } else {  // bf16, fp16: exps recomputed from the logits in the finish (one rounding of dlogits)
    k_.cross_entropy_local_sum_exp(sum_exp_.data(), logits, row_max_.data(), m, cols, begin,
                                   c.vocab_size);
    comm.tp_all_reduce(sum_exp_.data(), m);
    k_.cross_entropy_finish(losses_.data() + r, grad ? logits : nullptr, logits, row_max_.data(),
                            sum_exp_.data(), target_logit_.data(), targets + r, m, cols, begin,
                            c.vocab_size, dscale);
  }
}

template <typename Elem>
void LMHead<Elem>::prepare(int64_t n, const LlamaConfig& c, int64_t tp_size) {
  const int64_t h = c.hidden_size, cols = c.padded_vocab_size / tp_size;
  const int64_t m = std::min(n, chunk_rows(cols));
  xn_.resize(n * h);
  dxn_.resize(n * h);
  rstd_.resize(n);
  losses_.resize(n);
  logits_.resize(m * cols);
  row_max_.resize(m);
  target_logit_.resize(m);
  sum_exp_.resize(m);
  targets_.resize(n);
}

template <typename Elem>
int64_t LMHead<Elem>::allocated_bytes() const {
  auto bytes = [](const auto& v) { return v.capacity() * int64_t(sizeof(*v.data())); };
  return bytes(xn_) + bytes(rstd_) + bytes(dxn_) + bytes(logits_) + bytes(losses_) +
         bytes(row_max_) + bytes(target_logit_) + bytes(sum_exp_) + bytes(targets_);
}

template <typename Elem>
double LMHead<Elem>::sum_losses(int64_t n) const {
  return k_.sum(losses_.data(), n);
}

template <typename Elem>
double LMHead<Elem>::forward(const Elem* x, const int32_t* targets, int64_t n, const Elem* norm_w,
                             const Elem* head_w, const LlamaConfig& c,
                             const parallel::ModelComm& comm) {
  const int64_t h = c.hidden_size, cols = c.padded_vocab_size / comm.tp_size();
  norm(x, targets, n, norm_w, c, cols);
  const int64_t chunk = chunk_rows(cols);
  for (int64_t r = 0; r < n; r += chunk) {
    const int64_t m = std::min(chunk, n - r);
    k_.linear_forward(logits_.data(), xn_.data() + r * h, head_w, m, h, cols);
    chunk_loss(r, m, false, 0.0f, c, comm);
  }
  return sum_losses(n);
}

template <typename Elem>
double LMHead<Elem>::forward_backward(Elem* dx, float* d_norm_w, float* d_head_w, const Elem* x,
                                      const int32_t* targets, int64_t n, const Elem* norm_w,
                                      const Elem* head_w, float loss_weight, const LlamaConfig& c,
                                      const parallel::ModelComm& comm) {
  const int64_t h = c.hidden_size, cols = c.padded_vocab_size / comm.tp_size();
  norm(x, targets, n, norm_w, c, cols);
  dxn_.resize(n * h);
  const int64_t chunk = chunk_rows(cols);
  for (int64_t r = 0; r < n; r += chunk) {
    const int64_t m = std::min(chunk, n - r);
    const Elem* xn = xn_.data() + r * h;
    k_.linear_forward(logits_.data(), xn, head_w, m, h, cols);
    chunk_loss(r, m, true, loss_weight, c, comm);  // logits_ now holds dlogits
    k_.linear_backward(dxn_.data() + r * h, d_head_w, logits_.data(), xn, head_w, m, h, cols,
                       false);
  }
  comm.tp_all_reduce(dxn_.data(), n * h);  // each rank's vocabulary slice contributes a part
  k_.zero(dx, sizeof(Elem) * size_t(n * h));
  k_.rmsnorm_backward(dx, d_norm_w, dxn_.data(), x, norm_w, rstd_.data(), n, h);
  return sum_losses(n);
}

template class LMHead<float>;
template class LMHead<bf16>;
template class LMHead<fp16>;

}  // namespace mds::model
