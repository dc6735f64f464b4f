// The CUDA kernels: the interface of mds/ops/ops.h (same names, arguments and semantics, fp32),
// on device pointers, each enqueued on the given stream. Every pointer argument is a device
// pointer; scalars are host values. A function returns once its work is enqueued, except where
// it says it synchronises (it returns a host value or checks user data).
//
// Status (see README, "CUDA backend"): compiled for sm_90a, tested against the CPU kernels by
// tests/cuda/, never yet run on a GPU. bf16 variants and fusions (RMSNorm + residual, the head's
// cross entropy without the probabilities) come next (issue 6).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mds::ops::cuda {

// ---- GEMM (cuBLASLt, fp32 in and out, fp32 accumulation: CUBLAS_COMPUTE_32F, no TF32) ----
// y[m, n] = x[m, k] @ w[n, k]^T
void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k, int64_t n,
                    cudaStream_t stream);
// dx[m, k] = dy @ w (+= when accumulate_dx);  dw[n, k] += dy^T @ x;  dx or dw may be null.
void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                     int64_t m, int64_t k, int64_t n, bool accumulate_dx, cudaStream_t stream);

// ---- RMSNorm -------------------------------------------------------------------------------
void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                     float eps, cudaStream_t stream);
// dx += ..., dw += ... (dw deterministic: fixed row chunks summed in a fixed order)
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      const float* rstd, int64_t n, int64_t h, cudaStream_t stream);

// ---- RoPE, rotate-half, in place; cos/sin: [max_pos, hd/2] device tables from the CPU's
// rope_tables() (uploaded once), so both devices rotate by the same fp32 values. ------------
void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0, cudaStream_t stream);
void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
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

// ---- SwiGLU --------------------------------------------------------------------------------
void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f, cudaStream_t stream);
void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n, int64_t f,
                     cudaStream_t stream);  // dgu may alias gu

// ---- Embedding (vocab range [vocab_begin, vocab_begin + rows)) ------------------------------
void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows, cudaStream_t stream);
// dtable[ids[i] - vocab_begin, :] += dx[i, :]. Deterministic without atomics: each thread owns
// one column and adds the tokens in order (see embedding.cu for the cost and the plan).
void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows, cudaStream_t stream);

// ---- Cross entropy -------------------------------------------------------------------------
// Targets outside [0, vocab) throw mds::UserError as on the CPU: the check copies a flag back
// and synchronises the stream (cross_entropy_forward, _forward_backward and _local_max).
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

// ---- Elementwise and reductions ------------------------------------------------------------
void add(float* y, const float* a, const float* b, int64_t n, cudaStream_t stream);
void add_inplace(float* y, const float* x, int64_t n, cudaStream_t stream);
void scale_inplace(float* y, float alpha, int64_t n, cudaStream_t stream);
// In double, deterministic (fixed chunks, fixed reduction tree). Synchronises the stream to
// return the value; sum_squares_async leaves it in *out (device) instead.
double sum_squares(const float* x, int64_t n, cudaStream_t stream);
void sum_squares_async(double* out, const float* x, int64_t n, cudaStream_t stream);

// ---- AdamW (the CPU's operation order; scalar coefficients formed on the host in double) ----
void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, int64_t step, float grad_scale,
                cudaStream_t stream);

}  // namespace mds::ops::cuda
