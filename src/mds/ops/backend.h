// Where a model's buffers live and its kernels run: the CPU (OpenBLAS + OpenMP, the reference)
// or a CUDA GPU (ops/cuda, kernels enqueued in order on one compute stream). The layers call
// the kernels of ops.h through this interface, with the same names, arguments and semantics
// (ops.h documents each), on pointers into the backend's memory (core/buffer.h); so one model
// code runs on either device.
//
// Memory calls move bytes within the device, or between it and the host (upload, download:
// these return once the host side may be reused or read). A kernel returns once its work is
// ordered after everything enqueued before it; synchronize() waits for all of it. Functions
// returning a host value (sum, sum_squares, any_non_finite) synchronise.
//
// Every kernel comes in fp32 and, for the GPU's mixed precision, on bf16 storage (the second
// section below; the CPU runs those as a reference: ops/cpu/bf16_reference.h).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mds/core/bf16.h"

namespace mds::ops {

enum class Device { cpu, cuda };
const char* device_name(Device d);  // "cpu", "cuda"

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;

  // ---- Memory of this device ------------------------------------------------------------
  virtual void* allocate(size_t bytes) = 0;  // never null for bytes > 0; throws when full
  virtual void release(void* p) = 0;         // null is ignored
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // `rows` pieces of `width` bytes, read every src_pitch bytes, written every dst_pitch bytes.
  virtual void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                       size_t rows) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void upload(void* dst, const void* host, size_t bytes) = 0;
  virtual void download(void* host, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Bytes allocated through this backend and not yet released, and the most at any time (the
  // CUDA backend counts its caching allocator's size classes).
  struct MemoryStats {
    int64_t current = 0, peak = 0;
  };
  virtual MemoryStats memory_stats() const = 0;

  // ---- Kernels (ops.h) -------------------------------------------------------------------
  virtual void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k,
                              int64_t n) = 0;
  virtual void linear_backward(float* dx, float* dw, const float* dy, const float* x,
                               const float* w, int64_t m, int64_t k, int64_t n,
                               bool accumulate_dx) = 0;
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n,
                               int64_t h, float eps) = 0;
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x,
                                const float* w, const float* rstd, int64_t n, int64_t h) = 0;
  // The pre-norm block's residual add fused with the norm after it (ops.h).
  virtual void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                                        const float* r, const float* w, int64_t n, int64_t h,
                                        float eps) = 0;
  virtual void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy,
                                         const float* dresid, const float* resid_out,
                                         const float* w, const float* rstd, int64_t n,
                                         int64_t h) = 0;
  virtual void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s,
                            int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) = 0;
  virtual void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                             int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) = 0;
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k,
                                 const float* v, int64_t b, int64_t s, int64_t nq, int64_t nkv,
                                 int64_t hd, int64_t qkv_stride, int64_t out_stride) = 0;
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout,
                                  const float* out, const float* lse, const float* q,
                                  const float* k, const float* v, int64_t b, int64_t s, int64_t nq,
                                  int64_t nkv, int64_t hd, int64_t qkv_stride,
                                  int64_t out_stride) = 0;
  virtual void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f) = 0;
  virtual void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n,
                               int64_t f) = 0;
  virtual void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n,
                                 int64_t h, int64_t vocab_begin, int64_t rows) = 0;
  virtual void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n,
                                  int64_t h, int64_t vocab_begin, int64_t rows) = 0;
  virtual void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets,
                                     int64_t n, int64_t vpad, int64_t vocab) = 0;
  virtual void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                              const int32_t* targets, int64_t n, int64_t vpad,
                                              int64_t vocab, float dscale) = 0;
  virtual void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                                       const int32_t* targets, int64_t n, int64_t cols,
                                       int64_t col_begin, int64_t vocab) = 0;
  virtual void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                           const float* row_max, int64_t n, int64_t cols,
                                           int64_t col_begin, int64_t vocab) = 0;
  virtual void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                                    const double* sum_exp, const float* target_logit,
                                    const int32_t* targets, int64_t n, int64_t cols,
                                    int64_t col_begin, float dscale) = 0;
  virtual void add_inplace(float* y, const float* x, int64_t n) = 0;
  virtual double sum(const float* x, int64_t n) = 0;  // in double, in index order on the CPU
  virtual double sum_squares(const float* x, int64_t n) = 0;
  virtual void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr,
                          float beta1, float beta2, float eps, float weight_decay, int64_t step,
                          float grad_scale) = 0;
  virtual bool any_non_finite(const float* x, int64_t n) = 0;  // any inf or NaN (ops.h)

  // ---- Kernels on bf16 storage (Megatron's --bf16 mixed precision) ---------------------
  // The same kernels, names and argument order, with the types of ops/cuda/ops_cuda.h:
  // activations, weights and activation gradients (x, y, w, dy, dx, q/k/v, logits, dlogits) are
  // bf16; weight gradients (dw, dtable: Megatron's fp32 main_grad), saved statistics (rstd, lse,
  // row_max, target_logit, sum_exp), losses, the master weights and the optimizer moments are
  // fp32. Inside a kernel the arithmetic is the fp32 kernel's, on the exact fp32 values of the
  // bf16 inputs, and each bf16 output is rounded once (to nearest even) from its fp32 result;
  // "+=" into a bf16 output adds in fp32 and rounds the sum once. Differences from the fp32
  // forms are noted on the method.
  virtual void linear_forward(bf16* y, const bf16* x, const bf16* w, int64_t m, int64_t k,
                              int64_t n) = 0;
  // dw fp32 +=; dx (+= when accumulate_dx) bf16.
  virtual void linear_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                               int64_t m, int64_t k, int64_t n, bool accumulate_dx) = 0;
  virtual void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, int64_t n,
                               int64_t h, float eps) = 0;
  virtual void rmsnorm_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                                const float* rstd, int64_t n, int64_t h) = 0;
  // resid_out = bf16(x + r); y = norm of that rounded sum (the value the backward reads back).
  virtual void rmsnorm_residual_forward(bf16* y, bf16* resid_out, float* rstd, const bf16* x,
                                        const bf16* r, const bf16* w, int64_t n, int64_t h,
                                        float eps) = 0;
  virtual void rmsnorm_residual_backward(bf16* dsum, float* dw, const bf16* dy, const bf16* dresid,
                                         const bf16* resid_out, const bf16* w, const float* rstd,
                                         int64_t n, int64_t h) = 0;
  virtual void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s,
                            int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) = 0;
  virtual void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                             int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) = 0;
  virtual void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                                 int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                 int64_t qkv_stride, int64_t out_stride) = 0;
  // D = rowsum(dout * out) reads the bf16 out the forward stored.
  virtual void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                                  const float* lse, const bf16* q, const bf16* k, const bf16* v,
                                  int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                                  int64_t qkv_stride, int64_t out_stride) = 0;
  virtual void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f) = 0;
  virtual void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n,
                               int64_t f) = 0;  // dgu may alias gu
  // A copy (no rounding); the backward adds bf16 dx into the fp32 dtable, in token order.
  virtual void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n,
                                 int64_t h, int64_t vocab_begin, int64_t rows) = 0;
  virtual void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n,
                                  int64_t h, int64_t vocab_begin, int64_t rows) = 0;
  // Cross entropy over bf16 logits; losses and the pass statistics fp32, dlogits bf16 (may alias
  // logits; null: losses only). The vocab-parallel passes keep no probabilities between them:
  // local_sum_exp has no exps output and the finish recomputes exp(logit - row_max) from the
  // logits (hence its logits and vocab arguments), rounding (softmax - onehot) * dscale once.
  virtual void cross_entropy_forward(float* losses, const bf16* logits, const int32_t* targets,
                                     int64_t n, int64_t vpad, int64_t vocab) = 0;
  virtual void cross_entropy_forward_backward(float* losses, bf16* dlogits, const bf16* logits,
                                              const int32_t* targets, int64_t n, int64_t vpad,
                                              int64_t vocab, float dscale) = 0;
  virtual void cross_entropy_local_max(float* row_max, float* target_logit, const bf16* logits,
                                       const int32_t* targets, int64_t n, int64_t cols,
                                       int64_t col_begin, int64_t vocab) = 0;
  virtual void cross_entropy_local_sum_exp(double* sum_exp, const bf16* logits,
                                           const float* row_max, int64_t n, int64_t cols,
                                           int64_t col_begin, int64_t vocab) = 0;
  virtual void cross_entropy_finish(float* losses, bf16* dlogits, const bf16* logits,
                                    const float* row_max, const double* sum_exp,
                                    const float* target_logit, const int32_t* targets, int64_t n,
                                    int64_t cols, int64_t col_begin, int64_t vocab,
                                    float dscale) = 0;
  virtual void add_inplace(bf16* y, const bf16* x, int64_t n) = 0;  // y = bf16(y + x)
  // The bf16 model weights from the fp32 master weights (round to nearest even), and back.
  virtual void to_bf16(bf16* y, const float* x, int64_t n) = 0;
  virtual void to_fp32(float* y, const bf16* x, int64_t n) = 0;  // exact
  // AdamW on the fp32 master p with fp32 g, m, v (the fp32 step, same bits), also writing the
  // bf16 model weights p_bf16 = bf16(p) in the same pass.
  virtual void adamw_step(float* p, bf16* p_bf16, const float* g, float* m, float* v, int64_t n,
                          float lr, float beta1, float beta2, float eps, float weight_decay,
                          int64_t step, float grad_scale) = 0;
};

// The CPU backend (always there).
Backend& cpu_backend();

// The backend of `device`. For cuda: a UserError when this build has no CUDA backend or no
// GPU is visible.
Backend& backend_for(Device device);
// Whether backend_for(cuda) would succeed: built with CUDA and a GPU visible.
bool cuda_available();

}  // namespace mds::ops
