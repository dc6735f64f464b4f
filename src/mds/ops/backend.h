// Where a model's buffers live and its kernels run: the CPU (OpenBLAS + OpenMP, the reference)
// or a CUDA GPU (ops/cuda, kernels enqueued in order on one compute stream). The layers call
// the kernels of ops.h through this interface, with the same names, arguments and semantics
// (ops.h documents each), on pointers into the backend's memory (core/buffer.h); so one model
// code runs on either device.
//
// Memory calls move bytes within the device, or between it and the host (upload, download:
// these return once the host side may be reused or read). A kernel returns once its work is
// ordered after everything enqueued before it; synchronize() waits for all of it. Functions
// returning a host value (sum, sum_squares) synchronise.
#pragma once

#include <cstddef>
#include <cstdint>

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
};

// The CPU backend (always there).
Backend& cpu_backend();

// The backend of `device`. For cuda: a UserError when this build has no CUDA backend or no
// GPU is visible.
Backend& backend_for(Device device);
// Whether backend_for(cuda) would succeed: built with CUDA and a GPU visible.
bool cuda_available();

}  // namespace mds::ops
