// The kernel interface: free functions on raw fp32 buffers, one signature per kernel for
// every device (the bf16 forms: ops/cpu/half_reference.h on the CPU, ops/cuda/ops_cuda.h). Kernels
// know nothing of layers. Row-major everywhere; n = tokens (b*s).
// "+=" in a comment means the kernel accumulates into that output; otherwise it overwrites.
#pragma once

#include <cstdint>

namespace mds::ops {

// ---- GEMM (OpenBLAS) -------------------------------------------------------------------
// y[m, n] = x[m, k] @ w[n, k]^T            (a Linear layer without bias; w is [out, in])
void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k, int64_t n);
// dx[m, k] = dy[m, n] @ w[n, k]  (+= when accumulate_dx);  dw[n, k] += dy^T @ x
// dx or dw may be null to skip that product.
void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                     int64_t m, int64_t k, int64_t n, bool accumulate_dx);

// ---- RMSNorm: y = x * rstd * w,  rstd = 1/sqrt(mean(x^2) + eps), per row ---------------
// x, y: [n, h]; w: [h]; rstd: [n] saved for backward.
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                     float eps);
// dx[n, h] += ..., dw[h] += ...
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t h);

// RMSNorm fused with the residual add before it (a pre-norm block: h = x + r; y = norm(h)):
// resid_out[n, h] = x + r (the new residual stream; may alias x or r), y = rmsnorm(resid_out).
// y may not alias. The backward: dsum[n, h] = dresid + d(norm)/d(resid_out) dy, the gradient of
// the sum (so of both x and r), where dresid is the gradient reaching resid_out from later
// layers (null for none; dsum may alias it); dw[h] += ... as rmsnorm_backward.
void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                              const float* r, const float* w, int64_t n, int64_t h, float eps);
void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                               const float* resid_out, const float* w, const float* rstd, int64_t n,
                               int64_t h);

// ---- Rotary position embedding, rotate-half (NeoX / Hugging Face) convention ------------
// cos, sin: [max_pos, hd/2] tables from rope_tables(). x holds b*s rows of `heads` heads of
// size hd, consecutive heads contiguous, rows `row_stride` floats apart; rotated in place.
// Token t of a row-block has global position pos0 + t (t in [0, s)).
//   out[i]        = x[i] cos - x[i+hd/2] sin
//   out[i + hd/2] = x[i+hd/2] cos + x[i] sin       (angle = pos * theta^(-2i/hd))
void rope_tables(float* cos, float* sin, int64_t max_pos, int64_t hd, double theta);
void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0);
// The transpose (rotation by -angle), applied in place to the gradient.
void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0);

// ---- Causal self-attention with grouped K/V heads, flash style ---------------------------
// q: [b, s, nq, hd], k, v: [b, s, nkv, hd] (query head j uses kv head j / (nq/nkv)), each a
// view whose rows (one token) are qkv_stride floats apart, so they can live inside one fused
// qkv buffer. out: [b, s, nq, hd] with rows out_stride apart. lse: [b, nq, s] row
// log-sum-exp, the only statistic saved: no s x s matrix is ever stored. Scale 1/sqrt(hd).
// Deterministic: bit-identical results for any thread count.
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride);
// dq, dk, dv overwritten (same layout/stride as q, k, v); recomputes scores from q, k, lse.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride);

// ---- Attention of new queries against a KV cache (inference) ---------------------------
// The m queries of positions pos0 .. pos0+m-1 of one sequence against the cached keys and
// values of positions 0 .. pos0+m-1 (the new tokens' own K/V already written at pos0..):
// query i attends to keys 0 .. pos0+i (causal). q: [m, nq, hd] rows q_stride apart; k, v:
// [pos0+m, nkv, hd] rows kv_stride apart (query head j uses kv head j / (nq/nkv)); out:
// [m, nq, hd] rows out_stride apart. Scale 1/sqrt(hd). m = 1 is one decoding step.
// Deterministic: each (query, kv head) is one task, bit-identical for any thread count.
void attention_decode(float* out, const float* q, const float* k, const float* v, int64_t m,
                      int64_t pos0, int64_t nq, int64_t nkv, int64_t hd, int64_t q_stride,
                      int64_t kv_stride, int64_t out_stride);

// ---- SwiGLU: gu [n, 2f] = [gate | up] -> h [n, f] = silu(gate) * up ---------------------
void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f);
void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n, int64_t f);

// ---- Embedding: x[n, h] = table[ids[i] - vocab_begin, :] ------------------------------
// table holds rows [vocab_begin, vocab_begin + rows) of the vocabulary (a tensor-parallel
// rank's range; the whole table by default). Ids outside the range give zero rows in forward
// and no gradient in backward, so the sum over ranks of their outputs is the full lookup.
void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                       int64_t vocab_begin = 0, int64_t rows = INT64_MAX);
// dtable[ids[i] - vocab_begin, :] += dx[i, :]  (deterministic: fixed summation order)
void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin = 0, int64_t rows = INT64_MAX);

// ---- Cross entropy over a padded vocabulary ----------------------------------------------
// logits: [n, vpad]; only columns < vocab take part (padding columns are masked out of the
// softmax). losses[i] = logsumexp(logits[i, :vocab]) - logits[i, target[i]].
// A target outside [0, vocab) throws mds::UserError (data tokenized for another vocabulary;
// ops/targets.h). The CUDA kernels leave that check to their caller (the model head does it).
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab);
// Same losses, and dlogits = (softmax - onehot) * dscale on columns < vocab, 0 on padding.
// dlogits may alias logits (computed in place).
void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale);

// The same cross entropy in three passes for a vocabulary split across ranks (Megatron's
// vocab-parallel cross entropy). This rank's logits [n, cols] are vocabulary columns
// [col_begin, col_begin + cols); columns >= vocab are padding. Between the passes the caller
// reduces over the ranks: row_max by max, then sum_exp and target_logit by sum.
//   1. row_max[i] = max of the real local columns (-inf if none); target_logit[i] = the
//      target's logit when this rank holds it, else 0.
void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab);
//   2. sum_exp[i] = sum over real local columns of exp(logit - row_max[i]) (the global max);
//      when exps is not null it receives those exponentials (0 on padding; may alias logits).
void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                 const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                 int64_t vocab);
//   3. losses[i] = log(sum_exp) + row_max - target_logit; when dlogits is not null it holds the
//      exponentials of pass 2 and becomes (softmax - onehot) * dscale in place.
void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, float dscale);

// ---- Elementwise and reductions ---------------------------------------------------------
void add(float* y, const float* a, const float* b, int64_t n);  // y = a + b (y may alias)
void add_inplace(float* y, const float* x, int64_t n);          // y += x
void scale_inplace(float* y, float alpha, int64_t n);           // y *= alpha
double sum_squares(const float* x, int64_t n);                  // in double, deterministic
bool any_non_finite(const float* x, int64_t n);  // any inf or NaN (loss scaling's skip test)

// ---- AdamW (decoupled weight decay, torch.optim.AdamW semantics) -------------------------
// g is multiplied by grad_scale first (clipping). step counts from 1 (bias correction).
//   p *= 1 - lr*wd;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= lr * (m / (1-b1^step)) / (sqrt(v / (1-b2^step)) + eps)
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale);

}  // namespace mds::ops
