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
#include "mds/ops/cpu/bf16_reference.h"
#include "mds/ops/ops.h"

namespace mds::ops {

class CpuBackend : public Backend {
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

  void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k,
                      int64_t n) override {
    const Scope scope(*this);
    ops::linear_forward(y, x, w, m, k, n);
  }
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                       int64_t m, int64_t k, int64_t n, bool accumulate_dx) override {
    const Scope scope(*this);
    ops::linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx);
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                       float eps) override {
    const Scope scope(*this);
    ops::rmsnorm_forward(y, rstd, x, w, n, h, eps);
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                        const float* rstd, int64_t n, int64_t h) override {
    const Scope scope(*this);
    ops::rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h);
  }
  void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                                const float* r, const float* w, int64_t n, int64_t h,
                                float eps) override {
    const Scope scope(*this);
    ops::rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps);
  }
  void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                                 const float* resid_out, const float* w, const float* rstd,
                                 int64_t n, int64_t h) override {
    const Scope scope(*this);
    ops::rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h);
  }
  void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s,
                    int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    const Scope scope(*this);
    ops::rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0);
  }
  void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                     int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    const Scope scope(*this);
    ops::rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0);
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                         int64_t qkv_stride, int64_t out_stride) override {
    const Scope scope(*this);
    ops::attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                          const float* lse, const float* q, const float* k, const float* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride) override {
    const Scope scope(*this);
    ops::attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                            out_stride);
  }
  void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f) override {
    const Scope scope(*this);
    ops::swiglu_forward(h, gu, n, f);
  }
  void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n,
                       int64_t f) override {
    const Scope scope(*this);
    ops::swiglu_backward(dgu, dh, gu, n, f);
  }
  void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    const Scope scope(*this);
    ops::embedding_forward(x, ids, table, n, h, vocab_begin, rows);
  }
  void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    const Scope scope(*this);
    ops::embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows);
  }
  void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_forward(losses, logits, targets, n, vpad, vocab);
  }
  void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    const Scope scope(*this);
    ops::cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab, dscale);
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab);
  }
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
  void add_inplace(float* y, const float* x, int64_t n) override {
    const Scope scope(*this);
    ops::add_inplace(y, x, n);
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

  // ---- bf16: the reference kernels of ops/cpu/bf16_reference.h -------------------------------
  void linear_forward(bf16* y, const bf16* x, const bf16* w, int64_t m, int64_t k,
                      int64_t n) override {
    const Scope scope(*this);
    ops::linear_forward(y, x, w, m, k, n);
  }
  void linear_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, int64_t m,
                       int64_t k, int64_t n, bool accumulate_dx) override {
    const Scope scope(*this);
    ops::linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx);
  }
  void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, int64_t n, int64_t h,
                       float eps) override {
    const Scope scope(*this);
    ops::rmsnorm_forward(y, rstd, x, w, n, h, eps);
  }
  void rmsnorm_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                        const float* rstd, int64_t n, int64_t h) override {
    const Scope scope(*this);
    ops::rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h);
  }
  void rmsnorm_residual_forward(bf16* y, bf16* resid_out, float* rstd, const bf16* x, const bf16* r,
                                const bf16* w, int64_t n, int64_t h, float eps) override {
    const Scope scope(*this);
    ops::rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps);
  }
  void rmsnorm_residual_backward(bf16* dsum, float* dw, const bf16* dy, const bf16* dresid,
                                 const bf16* resid_out, const bf16* w, const float* rstd, int64_t n,
                                 int64_t h) override {
    const Scope scope(*this);
    ops::rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h);
  }
  void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s,
                    int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    const Scope scope(*this);
    ops::rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0);
  }
  void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                     int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    const Scope scope(*this);
    ops::rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0);
  }
  void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                         int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                         int64_t qkv_stride, int64_t out_stride) override {
    const Scope scope(*this);
    ops::attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
  }
  void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                          const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                          int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                          int64_t out_stride) override {
    const Scope scope(*this);
    ops::attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                            out_stride);
  }
  void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f) override {
    const Scope scope(*this);
    ops::swiglu_forward(h, gu, n, f);
  }
  void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n, int64_t f) override {
    const Scope scope(*this);
    ops::swiglu_backward(dgu, dh, gu, n, f);
  }
  void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    const Scope scope(*this);
    ops::embedding_forward(x, ids, table, n, h, vocab_begin, rows);
  }
  void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    const Scope scope(*this);
    ops::embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows);
  }
  void cross_entropy_forward(float* losses, const bf16* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_forward(losses, logits, targets, n, vpad, vocab);
  }
  void cross_entropy_forward_backward(float* losses, bf16* dlogits, const bf16* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    const Scope scope(*this);
    ops::cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab, dscale);
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const bf16* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols, col_begin, vocab);
  }
  void cross_entropy_local_sum_exp(double* sum_exp, const bf16* logits, const float* row_max,
                                   int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    const Scope scope(*this);
    ops::cross_entropy_local_sum_exp(sum_exp, logits, row_max, n, cols, col_begin, vocab);
  }
  void cross_entropy_finish(float* losses, bf16* dlogits, const bf16* logits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            int64_t vocab, float dscale) override {
    const Scope scope(*this);
    ops::cross_entropy_finish(losses, dlogits, logits, row_max, sum_exp, target_logit, targets, n,
                              cols, col_begin, vocab, dscale);
  }
  void add_inplace(bf16* y, const bf16* x, int64_t n) override {
    const Scope scope(*this);
    ops::add_inplace(y, x, n);
  }
  void to_bf16(bf16* y, const float* x, int64_t n) override {
    const Scope scope(*this);
    ops::to_bf16(y, x, n);
  }
  void to_fp32(float* y, const bf16* x, int64_t n) override {
    const Scope scope(*this);
    ops::to_fp32(y, x, n);
  }
  void adamw_step(float* p, bf16* p_bf16, const float* g, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    const Scope scope(*this);
    ops::adamw_step(p, p_bf16, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  }

 protected:
  // Around every call that touches this backend's memory: a checking backend in the tests
  // (tests/guarded_backend.h) makes the memory inaccessible outside of them, so any host access
  // to a model's buffers (which would crash on a GPU) crashes on the CPU too.
  virtual void enter() {}
  virtual void leave() {}

 private:
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> sizes_;  // live allocations
  MemoryStats stats_;

  struct Scope {
    CpuBackend& b;
    explicit Scope(CpuBackend& backend) : b(backend) { b.enter(); }
    ~Scope() { b.leave(); }
  };
};

}  // namespace mds::ops
