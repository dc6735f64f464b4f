// The CUDA kernels: the interface of mds/ops/ops.h (same names, arguments and semantics, fp32),
// on device pointers, each enqueued on the given stream, and the same kernels on 16-bit storage
// (bf16 and fp16) with the fusions the GPU needs. Every pointer argument is a device pointer;
// scalars are host values. A function returns once its work is enqueued, except where it says it
// synchronises (it returns a host value or checks user data).
//
// Mixed precision as Megatron does it (--bf16, --fp16): the model's weights and activations are
// 16-bit, the optimizer keeps fp32 master weights and fp32 moments, and weight gradients
// accumulate in fp32 (Megatron's main_grad, with gradient_accumulation_fusion). So a 16-bit
// overload takes 16-bit activations, weights and activation gradients, and writes fp32 wherever a
// value is a weight gradient (dw, dtable), a saved statistic (rstd, lse, row max, sums) or a loss.
// Inside every kernel the arithmetic is fp32 (reductions as the fp32 kernel: fp32 or double) and
// each 16-bit output is rounded once, to nearest even; the comment of each pair of overloads
// lists its 16-bit buffers. bf16 is __nv_bfloat16 (cuda_bf16.h), fp16 is __half (cuda_fp16.h);
// mds/core/bf16.h and mds/core/fp16.h convert on the host with the same bits. fp16 overflows
// beyond +-65504 to inf (__float2half_rn), which no kernel clamps: the dynamic loss scaler finds
// the inf in the fp32 gradients and skips the step.
//
// Status (see README, "CUDA backend"): compiled for sm_90a, tested against the CPU kernels by
// tests/cuda/ (16-bit kernels against the CPU's on the same 16-bit inputs), run in CI on the CPU
// emulation of a GPU (tests/cuda_emu), never yet on a GPU.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <cstdint>
#include <initializer_list>

namespace mds::ops::cuda {

using bf16 = __nv_bfloat16;
using fp16 = __half;

// ---- GEMM (cuBLASLt, fp32 accumulation: CUBLAS_COMPUTE_32F; fp32 operands without TF32) ----
// y[m, n] = x[m, k] @ w[n, k]^T
void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream);
// dx[m, k] = dy @ w (+= when accumulate_dx);  dw[n, k] += dy^T @ x;  dx or dw may be null.
void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                     int64_t m, int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream);
// 16-bit: x, w, y, dy, dx 16-bit (tensor cores, fp32 accumulation); dw fp32, += (main_grad).
void linear_forward(bf16* y, const bf16* x, const bf16* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream);
void linear_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, int64_t m,
                     int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream);
void linear_forward(fp16* y, const fp16* x, const fp16* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream);
void linear_backward(fp16* dx, float* dw, const fp16* dy, const fp16* x, const fp16* w, int64_t m,
                     int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream);

// ---- RMSNorm -------------------------------------------------------------------------------
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream);
// dx += ..., dw += ... (dw deterministic: fixed row chunks summed in a fixed order)
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream);
// 16-bit: x, w, y, dy, dx 16-bit; rstd and dw fp32. dx += rounds the sum once.
void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream);
void rmsnorm_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream);
void rmsnorm_forward(fp16* y, float* rstd, const fp16* x, const fp16* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream);
void rmsnorm_backward(fp16* dx, float* dw, const fp16* dy, const fp16* x, const fp16* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream);

// ---- RMSNorm fused with the residual add before it (pre-norm block: h = x + r; y = norm(h)) --
// resid_out[n, h] = x + r (the new residual stream), y = rmsnorm(resid_out) * w in one kernel
// (one pass over x and r instead of an add and a norm). resid_out may alias x or r; y may not.
// In 16-bit the norm is taken of the rounded sum, the value the backward reads back.
void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                              const float* r, const float* w, int64_t n, int64_t h, float eps,
                              cudaStream_t stream);
void rmsnorm_residual_forward(bf16* y, bf16* resid_out, float* rstd, const bf16* x, const bf16* r,
                              const bf16* w, int64_t n, int64_t h, float eps, cudaStream_t stream);
void rmsnorm_residual_forward(fp16* y, fp16* resid_out, float* rstd, const fp16* x, const fp16* r,
                              const fp16* w, int64_t n, int64_t h, float eps, cudaStream_t stream);
// dsum[n, h] = dresid + d(norm)/d(resid_out) dy: the gradient of the sum, hence of both x and r
// (dresid is the gradient reaching resid_out from later layers; null for none). dsum may alias
// dresid. dw[h] += ... (fp32 in every overload, deterministic as rmsnorm_backward's).
void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                               const float* resid_out, const float* w, const float* rstd, int64_t n,
                               int64_t h, cudaStream_t stream);
void rmsnorm_residual_backward(bf16* dsum, float* dw, const bf16* dy, const bf16* dresid,
                               const bf16* resid_out, const bf16* w, const float* rstd, int64_t n,
                               int64_t h, cudaStream_t stream);
void rmsnorm_residual_backward(fp16* dsum, float* dw, const fp16* dy, const fp16* dresid,
                               const fp16* resid_out, const fp16* w, const float* rstd, int64_t n,
                               int64_t h, cudaStream_t stream);

// ---- RoPE, rotate-half, in place; cos/sin: [max_pos, hd/2] device tables from the CPU's
// rope_tables() (uploaded once), so both devices rotate by the same fp32 values. ------------
void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream);
void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0,
                   cudaStream_t stream);
// 16-bit: x (dx) 16-bit, rotated in fp32 by the fp32 tables, rounded once.
void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream);
void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0,
                   cudaStream_t stream);
void rope_forward(fp16* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream);
void rope_backward(fp16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0,
                   cudaStream_t stream);

// ---- Attention, causal, grouped-query (flash style; ops.h has the layout) -----------------
// q, k, v: rows qkv_stride apart (views into the fused qkv buffer); out, dout: rows out_stride
// apart; lse [b, nq, s]; hd <= 128. dq, dk, dv overwritten. Deterministic (no atomics).
void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                        const float* lse, const float* q, const float* k, const float* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride, cudaStream_t stream);
// 16-bit: q, k, v, out, dout, dq, dk, dv 16-bit; lse fp32; scores, softmax and accumulators
// fp32. The backward's D = rowsum(dout * out) reads the 16-bit out the forward stored.
// Dispatch: the tensor-core kernels below when hd is 64 or 128, qkv_stride and out_stride are
// multiples of 8 elements and every pointer is 16-byte aligned (attention_tc_supported): the FA2
// mma.sync kernels (attention_mma.cu), or the WMMA ones (attention_tc.cu) when the environment
// variable MDS_ATTENTION=wmma; MDS_ATTENTION=cuda-core selects the CUDA-core kernels (the variable
// is read once per process). Otherwise the CUDA-core kernels (attention.cu).
void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                        const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride, cudaStream_t stream);
void attention_forward(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                       int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                       int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                        const float* lse, const fp16* q, const fp16* k, const fp16* v, int64_t b,
                        int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                        int64_t out_stride, cudaStream_t stream);
// The three 16-bit implementations, bypassing the dispatch (the tests call each). The CUDA-core
// kernels take any hd <= 128 and any strides. The tensor-core kernels (_tc: WMMA on 16-bit
// fragments; _mma: FlashAttention-2 style mma.sync m16n8k16 with S, P and O in registers; both
// fp32 accumulation) require attention_tc_supported: they also round P and dS to the storage
// type to enter the tensor cores.
void attention_forward_cuda_core(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                 int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                 int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward_cuda_core(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                                  const float* lse, const bf16* q, const bf16* k, const bf16* v,
                                  int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                  int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_forward_cuda_core(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                                 int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                 int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward_cuda_core(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                                  const float* lse, const fp16* q, const fp16* k, const fp16* v,
                                  int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                  int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
bool attention_tc_supported(int64_t hd, int64_t qkv_stride, int64_t out_stride,
                            std::initializer_list<const void*> pointers);
void attention_forward_tc(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward_tc(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                           const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                           int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                           int64_t out_stride, cudaStream_t stream);
void attention_forward_tc(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward_tc(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                           const float* lse, const fp16* q, const fp16* k, const fp16* v, int64_t b,
                           int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                           int64_t out_stride, cudaStream_t stream);
void attention_forward_mma(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                           int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                           int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward_mma(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                            const float* lse, const bf16* q, const bf16* k, const bf16* v,
                            int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                            int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_forward_mma(fp16* out, float* lse, const fp16* q, const fp16* k, const fp16* v,
                           int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                           int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);
void attention_backward_mma(fp16* dq, fp16* dk, fp16* dv, const fp16* dout, const fp16* out,
                            const float* lse, const fp16* q, const fp16* k, const fp16* v,
                            int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                            int64_t qkv_stride, int64_t out_stride, cudaStream_t stream);

// ---- SwiGLU --------------------------------------------------------------------------------
void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f, cudaStream_t stream);
void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n, int64_t f,
                     cudaStream_t stream);  // dgu may alias gu
// 16-bit: gu, h, dh, dgu 16-bit.
void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f, cudaStream_t stream);
void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n, int64_t f,
                     cudaStream_t stream);  // dgu may alias gu
void swiglu_forward(fp16* h, const fp16* gu, int64_t n, int64_t f, cudaStream_t stream);
void swiglu_backward(fp16* dgu, const fp16* dh, const fp16* gu, int64_t n, int64_t f,
                     cudaStream_t stream);  // dgu may alias gu

// ---- Embedding (vocab range [vocab_begin, vocab_begin + rows)) ------------------------------
void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream);
// dtable[ids[i] - vocab_begin, :] += dx[i, :]. Deterministic without atomics: each thread owns
// one column and adds the tokens in order (see embedding.cu for the cost and the plan).
void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream);
// 16-bit: the table (a model weight) and x 16-bit, a copy (no rounding); backward: 16-bit dx into
// an fp32 dtable (main_grad), in the same token order.
void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream);
void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream);
void embedding_forward(fp16* x, const int32_t* ids, const fp16* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream);
void embedding_backward(float* dtable, const fp16* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream);

// ---- Cross entropy -------------------------------------------------------------------------
// Targets must be in [0, vocab): the caller checks them on the host (ops/targets.h), so these
// never synchronise the stream. An invalid target spoils its row's loss and nothing else.
void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab, cudaStream_t stream);
void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale, cudaStream_t stream);
// The vocab-parallel passes (ops.h); the caller reduces row_max, sum_exp, target_logit between.
void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab, cudaStream_t stream);
void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                 const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                 int64_t vocab, cudaStream_t stream);
void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, float dscale,
                          cudaStream_t stream);
// 16-bit logits (the LM head's output), fp32 losses, row_max, target_logit and sum_exp, 16-bit
// dlogits. No probabilities are kept between the passes (a 16-bit copy would round them twice):
// the sum pass keeps none and the finish recomputes exp(logit - max) from the logits and writes
// (softmax - onehot) * dscale, rounded once, 0 on padding. dlogits may alias logits.
void cross_entropy_forward(float* losses, const bf16* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab, cudaStream_t stream);
void cross_entropy_forward_backward(float* losses, bf16* dlogits, const bf16* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale, cudaStream_t stream);
void cross_entropy_local_max(float* row_max, float* target_logit, const bf16* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab, cudaStream_t stream);
void cross_entropy_local_sum_exp(double* sum_exp, const bf16* logits, const float* row_max,
                                 int64_t n, int64_t cols, int64_t col_begin, int64_t vocab,
                                 cudaStream_t stream);
// dlogits null: the losses only.
void cross_entropy_finish(float* losses, bf16* dlogits, const bf16* logits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale,
                          cudaStream_t stream);
void cross_entropy_forward(float* losses, const fp16* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab, cudaStream_t stream);
void cross_entropy_forward_backward(float* losses, fp16* dlogits, const fp16* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale, cudaStream_t stream);
void cross_entropy_local_max(float* row_max, float* target_logit, const fp16* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab, cudaStream_t stream);
void cross_entropy_local_sum_exp(double* sum_exp, const fp16* logits, const float* row_max,
                                 int64_t n, int64_t cols, int64_t col_begin, int64_t vocab,
                                 cudaStream_t stream);
void cross_entropy_finish(float* losses, fp16* dlogits, const fp16* logits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale,
                          cudaStream_t stream);

// ---- Elementwise and reductions ------------------------------------------------------------
void add(float* y, const float* a, const float* b, int64_t n, cudaStream_t stream);
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);
void add_inplace(bf16* y, const bf16* x, int64_t n, cudaStream_t stream);  // y = bf16(y + x)
void add_inplace(fp16* y, const fp16* x, int64_t n, cudaStream_t stream);  // y = fp16(y + x)
void scale_inplace(float* y, float alpha, int64_t n, cudaStream_t stream);
// In double, deterministic (fixed chunks, fixed reduction tree). Synchronises the stream to
// return the value; sum_squares_async leaves it in *out (device) instead.
double sum_squares(const float* x, int64_t n, cudaStream_t stream);
void sum_squares_async(double* out, const float* x, int64_t n, cudaStream_t stream);

// ---- Precision conversion and the overflow check --------------------------------------------
// y[i] = H(x[i]) (round to nearest even; fp16 overflows to inf): the 16-bit model weights from
// the fp32 master.
void to_half(bf16* y, const float* x, int64_t n, cudaStream_t stream);
void to_half(fp16* y, const float* x, int64_t n, cudaStream_t stream);
void to_fp32(float* y, const bf16* x, int64_t n, cudaStream_t stream);  // exact
void to_fp32(float* y, const fp16* x, int64_t n, cudaStream_t stream);  // exact
// Whether any x[i] is inf or NaN: the skip test of fp16 dynamic loss scaling, over the fp32
// gradients. any_non_finite synchronises the stream to return it. any_non_finite_async sets
// *flag (device) to 1 when it finds one and never clears it, so one flag zeroed once can collect
// several buffers and be read back once. The answer is an OR: the same whatever the timing.
bool any_non_finite(const float* x, int64_t n, cudaStream_t stream);
void any_non_finite_async(int32_t* flag, const float* x, int64_t n, cudaStream_t stream);

// ---- AdamW (the CPU's operation order; scalar coefficients formed on the host in double) ----
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                cudaStream_t stream);
// The mixed-precision step: the same update of the fp32 master p (and fp32 g, m, v), which is
// also written to the 16-bit model weights p_half = H(p) in the same pass (no separate to_half
// over the parameters).
void adamw_step(float* p, bf16* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale, cudaStream_t stream);
void adamw_step(float* p, fp16* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale, cudaStream_t stream);

}  // namespace mds::ops::cuda
