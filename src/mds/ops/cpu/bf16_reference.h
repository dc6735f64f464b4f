// The bf16 kernels on the CPU: the numerical truth the CUDA bf16 kernels (ops/cuda/ops_cuda.h)
// are held to, and what the CPU backend runs for a bf16 model. Same names and arguments as the
// CUDA overloads, on host memory, with mds::bf16 storage.
//
// Each kernel converts its bf16 inputs to fp32 scratch (exact), runs the fp32 CPU kernel of
// ops.h on them, and rounds each bf16 output once, to nearest even, from that fp32 result; fp32
// outputs (rstd, lse, losses, statistics, dw, dtable) are the fp32 kernel's own. "+=" into a
// bf16 output converts the prior contents, lets the fp32 kernel add, and rounds the sum once.
// So for bf16-rounded inputs every bf16 output is bit for bit the fp32 kernel's result rounded
// to bf16: the precision contract of the CUDA kernels, with the CPU's own fp32 arithmetic.
// Slow by design (a full fp32 copy of each operand per call): a reference, not a fast path.
// Buffers may alias exactly where the fp32 kernel or ops_cuda.h says they may.
#pragma once

#include <cstdint>

#include "mds/core/bf16.h"

namespace mds::ops {

// ---- GEMM: x, w, y, dy, dx bf16; dw fp32 += (main_grad) ---------------------------------------
void linear_forward(bf16* y, const bf16* x, const bf16* w, int64_t m, int64_t k, int64_t n);
void linear_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, int64_t m,
                     int64_t k, int64_t n, bool accumulate_dx);

// ---- RMSNorm (plain and fused with the residual add): rstd, dw fp32 ----------------------------
void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, int64_t n, int64_t h,
                     float eps);
void rmsnorm_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                      const float* rstd, int64_t n, int64_t h);  // dx += (rounded once)
// resid_out = bf16(x + r), and y the norm of that rounded sum (what the backward reads back).
void rmsnorm_residual_forward(bf16* y, bf16* resid_out, float* rstd, const bf16* x, const bf16* r,
                              const bf16* w, int64_t n, int64_t h, float eps);
void rmsnorm_residual_backward(bf16* dsum, float* dw, const bf16* dy, const bf16* dresid,
                               const bf16* resid_out, const bf16* w, const float* rstd, int64_t n,
                               int64_t h);

// ---- RoPE in place on bf16 rows (fp32 tables) ---------------------------------------------------
void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0);
void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0);

// ---- Attention: q, k, v, out, dout, dq, dk, dv bf16 (strided views as in ops.h); lse fp32 -------
// Only the elements of the views are read or written (rows qkv_stride / out_stride apart).
void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride);
void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride);

// ---- SwiGLU (dgu may alias gu) ------------------------------------------------------------------
void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f);
void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n, int64_t f);

// ---- Embedding: a bf16 table copied into bf16 x; bf16 dx added into the fp32 dtable -------------
void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows);
void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows);

// ---- Cross entropy over bf16 logits (dlogits bf16, may alias logits; null: losses only) ---------
void cross_entropy_forward(float* losses, const bf16* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab);
void cross_entropy_forward_backward(float* losses, bf16* dlogits, const bf16* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale);
void cross_entropy_local_max(float* row_max, float* target_logit, const bf16* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab);
// No exponentials are kept (a bf16 copy would round the probabilities twice): the finish
// recomputes exp(logit - row_max) from the logits and rounds (softmax - onehot) * dscale once.
void cross_entropy_local_sum_exp(double* sum_exp, const bf16* logits, const float* row_max,
                                 int64_t n, int64_t cols, int64_t col_begin, int64_t vocab);
void cross_entropy_finish(float* losses, bf16* dlogits, const bf16* logits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale);

// ---- Elementwise, conversions, the mixed-precision AdamW ---------------------------------------
void add_inplace(bf16* y, const bf16* x, int64_t n);  // y = bf16(y + x)
void to_bf16(bf16* y, const float* x, int64_t n);     // round to nearest even
void to_fp32(float* y, const bf16* x, int64_t n);     // exact
// The fp32 AdamW step of ops.h on the master p (fp32 g, m, v), then p_bf16 = bf16(p).
void adamw_step(float* p, bf16* p_bf16, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale);

}  // namespace mds::ops
