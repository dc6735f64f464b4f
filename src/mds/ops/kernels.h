// The kernels of a backend (ops/backend.h), as interfaces templated on the storage type T of
// activations, weights and activation gradients: float (fp32), and the 16-bit types of mixed
// precision, mds::bf16 (--bf16) and mds::fp16 (--fp16). ops.h documents each kernel (the fp32
// CPU form); the CUDA overloads are in ops/cuda/ops_cuda.h.
//
// Mixed precision as Megatron does it: whatever T, weight gradients (dw, dtable: Megatron's
// fp32 main_grad), saved statistics (rstd, lse, row_max, target_logit, sum_exp), losses, the
// master weights and the optimizer moments are fp32. Inside a kernel the arithmetic is the fp32
// kernel's, on the exact fp32 values of the 16-bit inputs, and each 16-bit output is rounded
// once (to nearest even) from its fp32 result; "+=" into a 16-bit output adds in fp32 and rounds
// the sum once.
//
//   Kernels<T>       the kernels whose arguments are the same for every T;
//   MixedKernels<H>  those of a 16-bit H alone (its cross-entropy passes keep no probabilities,
//                    the conversions, the AdamW that also writes the H weights);
//   KernelSet<T...>  Kernels<T> for each T as one overload set: a call picks the storage type
//                    by its pointers, so one templated model code runs in any precision.
#pragma once

#include <cstdint>

#include "mds/core/bf16.h"
#include "mds/core/fp16.h"

namespace mds::ops {

template <typename T>
class Kernels {
 public:
  virtual ~Kernels() = default;

  // y [m, n] = x [m, k] w^T (w [n, k]); backward: dw += dy^T x (fp32), dx (+= when accumulate_dx).
  virtual void linear_forward(T* y, const T* x, const T* w, int64_t m, int64_t k, int64_t n) = 0;
  virtual void linear_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, int64_t m,
                               int64_t k, int64_t n, bool accumulate_dx) = 0;
  virtual void rmsnorm_forward(T* y, float* rstd, const T* x, const T* w, int64_t n, int64_t h,
                               float eps) = 0;
  virtual void rmsnorm_backward(T* dx, float* dw, const T* dy, const T* x, const T* w,
                                const float* rstd, int64_t n, int64_t h) = 0;  // dx +=
  // The pre-norm block's residual add fused with the norm after it: resid_out = x + r (rounded
  // to T), y = the norm of that stored sum (the value the backward reads back).
  virtual void rmsnorm_residual_forward(T* y, T* resid_out, float* rstd, const T* x, const T* r,
                                        const T* w, int64_t n, int64_t h, float eps) = 0;
  virtual void rmsnorm_residual_backward(T* dsum, float* dw, const T* dy, const T* dresid,
                                         const T* resid_out, const T* w, const float* rstd,
                                         int64_t n, int64_t h) = 0;
  // In place on strided rows (fp32 tables).
  virtual void rope_forward(T* x, const float* cos, const float* sin, int64_t b, int64_t s,
                            int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) = 0;
  virtual void rope_backward(T* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                             int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) = 0;
  // Causal flash attention over strided views, GQA heads read in place; lse fp32. The
  // backward's D = rowsum(dout * out) reads the out the forward stored.
  virtual void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                                 int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                                 int64_t out_stride) = 0;
  virtual void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out,
                                  const float* lse, const T* q, const T* k, const T* v, int64_t b,
                                  int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                  int64_t qkv_stride, int64_t out_stride) = 0;
  virtual void swiglu_forward(T* h, const T* gu, int64_t n, int64_t f) = 0;
  virtual void swiglu_backward(T* dgu, const T* dh, const T* gu, int64_t n,
                               int64_t f) = 0;  // dgu may alias gu
  // A copy of table rows (no rounding); the backward adds dx into the fp32 dtable, in token order.
  virtual void embedding_forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h,
                                 int64_t vocab_begin, int64_t rows) = 0;
  virtual void embedding_backward(float* dtable, const T* dx, const int32_t* ids, int64_t n,
                                  int64_t h, int64_t vocab_begin, int64_t rows) = 0;
  // Cross entropy; losses fp32, dlogits T (may alias logits; null: losses only).
  virtual void cross_entropy_forward(float* losses, const T* logits, const int32_t* targets,
                                     int64_t n, int64_t vpad, int64_t vocab) = 0;
  virtual void cross_entropy_forward_backward(float* losses, T* dlogits, const T* logits,
                                              const int32_t* targets, int64_t n, int64_t vpad,
                                              int64_t vocab, float dscale) = 0;
  // The vocab-parallel passes (ops.h): 1. the local maximum and target logit, 2. the local sum
  // of exponentials (Backend and MixedKernels), 3. the finish.
  virtual void cross_entropy_local_max(float* row_max, float* target_logit, const T* logits,
                                       const int32_t* targets, int64_t n, int64_t cols,
                                       int64_t col_begin, int64_t vocab) = 0;
  virtual void add_inplace(T* y, const T* x, int64_t n) = 0;  // y = T(y + x)
};

template <typename H>
class MixedKernels {
 public:
  virtual ~MixedKernels() = default;

  // The vocab-parallel passes keep no probabilities between them (an H copy would round them
  // twice): local_sum_exp has no exps output and the finish recomputes exp(logit - row_max) from
  // the logits (hence its logits and vocab arguments), rounding (softmax - onehot) * dscale once.
  virtual void cross_entropy_local_sum_exp(double* sum_exp, const H* logits, const float* row_max,
                                           int64_t n, int64_t cols, int64_t col_begin,
                                           int64_t vocab) = 0;
  virtual void cross_entropy_finish(float* losses, H* dlogits, const H* logits,
                                    const float* row_max, const double* sum_exp,
                                    const float* target_logit, const int32_t* targets, int64_t n,
                                    int64_t cols, int64_t col_begin, int64_t vocab,
                                    float dscale) = 0;
  // The H model weights from the fp32 master weights (round to nearest even), and back (exact).
  virtual void to_half(H* y, const float* x, int64_t n) = 0;
  virtual void to_fp32(float* y, const H* x, int64_t n) = 0;
  // AdamW on the fp32 master p with fp32 g, m, v (the fp32 step, same bits), also writing the
  // H model weights p_half = H(p) in the same pass.
  virtual void adamw_step(float* p, H* p_half, const float* g, float* m, float* v, int64_t n,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          int64_t step, float grad_scale) = 0;
};

template <typename... T>
class KernelSet : public Kernels<T>... {
 public:
  using Kernels<T>::linear_forward...;
  using Kernels<T>::linear_backward...;
  using Kernels<T>::rmsnorm_forward...;
  using Kernels<T>::rmsnorm_backward...;
  using Kernels<T>::rmsnorm_residual_forward...;
  using Kernels<T>::rmsnorm_residual_backward...;
  using Kernels<T>::rope_forward...;
  using Kernels<T>::rope_backward...;
  using Kernels<T>::attention_forward...;
  using Kernels<T>::attention_backward...;
  using Kernels<T>::swiglu_forward...;
  using Kernels<T>::swiglu_backward...;
  using Kernels<T>::embedding_forward...;
  using Kernels<T>::embedding_backward...;
  using Kernels<T>::cross_entropy_forward...;
  using Kernels<T>::cross_entropy_forward_backward...;
  using Kernels<T>::cross_entropy_local_max...;
  using Kernels<T>::add_inplace...;
};

template <typename... H>
class MixedKernelSet : public MixedKernels<H>... {
 public:
  using MixedKernels<H>::cross_entropy_local_sum_exp...;
  using MixedKernels<H>::cross_entropy_finish...;
  using MixedKernels<H>::to_half...;
  using MixedKernels<H>::to_fp32...;
  using MixedKernels<H>::adamw_step...;
};

}  // namespace mds::ops
