// The CPU backend of ops/backend.h: host memory (64-byte aligned, for the vector loads) and
// the kernels of ops/cpu, which run to completion before returning (so synchronize has nothing
// to wait for). cpu_backend() is the one the code uses; the class is here for the tests'
// checking backend.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

#include "mds/ops/backend.h"
#include "mds/ops/cpu/half_reference.h"
#include "mds/ops/ops.h"

namespace mds::ops {

class CpuMemory : public Backend {
 public:
  Device device() const override { return Device::cpu; }

  void* allocate(size_t bytes) override {
    if (bytes == 0) return nullptr;
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (!p) throw std::bad_alloc();
    const std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = bytes;
    stats_.current += int64_t(bytes);
    stats_.peak = std::max(stats_.peak, stats_.current);
    return p;
  }
  void release(void* p) override {
    if (!p) return;
    {
      const std::lock_guard<std::mutex> lock(mu_);
      const auto it = sizes_.find(p);
      if (it != sizes_.end()) {
        stats_.current -= int64_t(it->second);
        sizes_.erase(it);
      }
    }
    std::free(p);
  }
  MemoryStats memory_stats() const override {
    const std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    const Scope scope(*this);
    if (bytes) std::memmove(dst, src, bytes);
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override {
    const Scope scope(*this);
    for (size_t r = 0; r < rows; ++r)
      std::memcpy(static_cast<char*>(dst) + r * dst_pitch,
                  static_cast<const char*>(src) + r * src_pitch, width);
  }
  void zero(void* p, size_t bytes) override {
    const Scope scope(*this);
    if (bytes) std::memset(p, 0, bytes);
  }
  void upload(void* dst, const void* host, size_t bytes) override { copy(dst, host, bytes); }
  void download(void* host, const void* src, size_t bytes) override { copy(host, src, bytes); }
  void synchronize() override {}

 protected:
  // Around every call that touches this backend's memory: a checking backend in the tests
  // (tests/guarded_backend.h) makes the memory inaccessible outside of them, so any host access
  // to a model's buffers (which would crash on a GPU) crashes on the CPU too.
  virtual void enter() {}
  virtual void leave() {}
  struct Scope {
    CpuMemory& b;
    explicit Scope(CpuMemory& backend) : b(backend) { b.enter(); }
    ~Scope() { b.leave(); }
  };

 private:
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> sizes_;  // live allocations
  MemoryStats stats_;
};

// The kernels of Kernels<T> on storage T: ops.h for fp32, half_reference.h for bf16 and fp16.
template <typename Base, typename T>
class CpuKernels : public Base {
 protected:
  using Scope = typename Base::Scope;

 public:
  void linear_forward(T* y, const T* x, const T* w, int64_t m, int64_t k, int64_t n) override {
    const Scope scope(*this);
    ops::linear_forward(y, x, w, m, k, n);
  }
  void linear_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx) override {
    const Scope scope(*this);
    ops::linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx);
  }
  void rmsnorm_forward(T* y, float* rstd, const T* x, const T* w, int64_t n, int64_t h,
                       float eps) override {
    const Scope scope(*this);
    ops::rmsnorm_forward(y, rstd, x, w, n, h, eps);
  }
  void rmsnorm_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd,
                        int64_t n, int64_t h) override {
    const Scope scope(*this);
    ops::rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h);
  }
  void rmsnorm_residual_forward(T* y, T* resid_out, float* rstd, const T* x, const T* r, const T* w,
                                int64_t n, int64_t h, float eps) override {
    const Scope scope(*this);
    ops::rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps);
  }
  void rmsnorm_residual_backward(T* dsum, float* dw, const T* dy, const T* dresid,
                                 const T* resid_out, const T* w, const float* rstd, int64_t n,
                                 int64_t h) override {
    const Scope scope(*this);
    ops::rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h);
  }
  void rope_forward(T* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                    int64_t hd, int64_t row_stride, int64_t pos0) override {
    const Scope scope(*this);
    ops::rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0);
  }
  void rope_backward(T* dx, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                     int64_t hd, int64_t row_stride, int64_t pos0) override {
    const Scope scope(*this);
    ops::rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0);
  }
  void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                         int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                         int64_t out_stride) override {
    const Scope scope(*this);
    ops::attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
  }
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse,
                          const T* q, const T* k, const T* v, int64_t b, int64_t s, int64_t nq,
                          int64_t nkv, int64_t hd, int64_t qkv_stride,
                          int64_t out_stride) override {
    const Scope scope(*this);
    ops::attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                            out_stride);
  }
  void swiglu_forward(T* h, const T* gu, int64_t n, int64_t f) override {
    const Scope scope(*this);
    ops::swiglu_forward(h, gu, n, f);
  }
  void swiglu_backward(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f) override {
    const Scope scope(*this);
    ops::swiglu_backward(dgu, dh, gu, n, f);
  }
  void embedding_forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    const Scope scope(*this);
    ops::embedding_forward(x, ids, table, n, h, vocab_begin, rows);
  }
  void embedding_backward(float* dtable, const T* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    const Scope scope(*this);
    ops::embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows);
  }
  void cross_entropy_forward(float* losses, const T* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_forward(losses, logits, targets, n, vpad, vocab);
  }
  void cross_entropy_forward_backward(float* losses, T* dlogits, const T* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    const Scope scope(*this);
    ops::cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab, dscale);
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const T* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab);
  }
  void add_inplace(T* y, const T* x, int64_t n) override {
    const Scope scope(*this);
    ops::add_inplace(y, x, n);
  }
};

// ... and those of MixedKernels<H>.
template <typename Base, typename H>
class CpuMixedKernels : public CpuKernels<Base, H> {
 protected:
  using Scope = typename Base::Scope;

 public:
  void cross_entropy_local_sum_exp(double* sum_exp, const H* logits, const float* row_max,
                                   int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_local_sum_exp(sum_exp, logits, row_max, n, cols, col_begin, vocab);
  }
  void cross_entropy_finish(float* losses, H* dlogits, const H* logits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            int64_t vocab, float dscale) override {
    const Scope scope(*this);
    ops::cross_entropy_finish(losses, dlogits, logits, row_max, sum_exp, target_logit, targets, n,
                              cols, col_begin, vocab, dscale);
  }
  void to_half(H* y, const float* x, int64_t n) override {
    const Scope scope(*this);
    ops::to_half(y, x, n);
  }
  void to_fp32(float* y, const H* x, int64_t n) override {
    const Scope scope(*this);
    ops::to_fp32(y, x, n);
  }
  void adamw_step(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    const Scope scope(*this);
    ops::adamw_step(p, p_half, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  }
};

class CpuBackend
    : public CpuMixedKernels<CpuMixedKernels<CpuKernels<CpuMemory, float>, bf16>, fp16> {
 public:
  void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                   const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_local_sum_exp(sum_exp, exps, logits, row_max, n, cols, col_begin, vocab);
  }
  void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            float dscale) override {
    const Scope scope(*this);
    ops::cross_entropy_finish(losses, dlogits, row_max, sum_exp, target_logit, targets, n, cols,
                              col_begin, dscale);
  }
  double sum(const float* x, int64_t n) override {
    const Scope scope(*this);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i];
    return s;
  }
  double sum_squares(const float* x, int64_t n) override {
    const Scope scope(*this);
    return ops::sum_squares(x, n);
  }
  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    const Scope scope(*this);
    ops::adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  }
  bool any_non_finite(const float* x, int64_t n) override {
    const Scope scope(*this);
    return ops::any_non_finite(x, n);
  }
};

}  // namespace mds::ops
