// A backend that times every call of another: the kernel table of `--timing-log-level 2`.
// Each call waits for the device afterwards (Backend::synchronize), so on a GPU the time of a
// kernel is its own and not its launch, at the price of the overlap between kernels: the run is
// slower, the split between kernels is the truth. Memory moves (copy, upload, ...) are timed as
// kernels are; allocation is not. pause() leaves calls out (evaluation runs between steps).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>

#include "mds/ops/backend.h"

namespace mds::ops {

class TimedCalls : public Backend {
 public:
  struct Stat {
    int64_t calls = 0;
    double seconds = 0;
  };

 protected:
  Backend& inner_;
  std::map<std::string, Stat> stats_;
  bool paused_ = false;

  template <typename F>
  auto timed(const char* name, F&& f) {
    const auto start = std::chrono::steady_clock::now();
    auto finish = [&] {
      inner_.synchronize();
      if (paused_) return;
      Stat& s = stats_[name];
      ++s.calls;
      s.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    };
    if constexpr (std::is_void_v<decltype(f())>) {
      f();
      finish();
    } else {
      auto r = f();
      finish();
      return r;
    }
  }

 public:
  explicit TimedCalls(Backend& inner) : inner_(inner) {}
  const std::map<std::string, Stat>& stats() const { return stats_; }
  void pause(bool paused) { paused_ = paused; }
  void reset() { stats_.clear(); }
  // The table: one row per call name, slowest first, with its share of the timed total and
  // milliseconds per training iteration.
  std::string report(int64_t iterations) const;

  Device device() const override { return inner_.device(); }
  void* allocate(size_t bytes) override { return inner_.allocate(bytes); }
  void release(void* p) override { inner_.release(p); }
  void synchronize() override { inner_.synchronize(); }
  MemoryStats memory_stats() const override { return inner_.memory_stats(); }
  void copy(void* dst, const void* src, size_t bytes) override {
    timed("copy", [&] { inner_.copy(dst, src, bytes); });
  }
  void copy_2d(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
               size_t rows) override {
    timed("copy", [&] { inner_.copy_2d(dst, dst_pitch, src, src_pitch, width, rows); });
  }
  void zero(void* p, size_t bytes) override {
    timed("zero", [&] { inner_.zero(p, bytes); });
  }
  void upload(void* dst, const void* host, size_t bytes) override {
    timed("upload", [&] { inner_.upload(dst, host, bytes); });
  }
  void download(void* host, const void* src, size_t bytes) override {
    timed("download", [&] { inner_.download(host, src, bytes); });
  }
};

// Kernels<T> and MixedKernels<H>, each call timed under its name (all storage types together).
template <typename Base, typename T>
class TimedKernels : public Base {
 public:
  using Base::Base;
  void linear_forward(T* y, const T* x, const T* w, int64_t m, int64_t k, int64_t n) override {
    this->timed("linear_forward", [&] { this->inner_.linear_forward(y, x, w, m, k, n); });
  }
  void linear_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, int64_t m, int64_t k,
                       int64_t n, bool accumulate_dx) override {
    this->timed("linear_backward",
                [&] { this->inner_.linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx); });
  }
  void rmsnorm_forward(T* y, float* rstd, const T* x, const T* w, int64_t n, int64_t h,
                       float eps) override {
    this->timed("rmsnorm_forward", [&] { this->inner_.rmsnorm_forward(y, rstd, x, w, n, h, eps); });
  }
  void rmsnorm_backward(T* dx, float* dw, const T* dy, const T* x, const T* w, const float* rstd,
                        int64_t n, int64_t h) override {
    this->timed("rmsnorm_backward",
                [&] { this->inner_.rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h); });
  }
  void rmsnorm_residual_forward(T* y, T* resid_out, float* rstd, const T* x, const T* r, const T* w,
                                int64_t n, int64_t h, float eps) override {
    this->timed("rmsnorm_residual_forward", [&] {
      this->inner_.rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps);
    });
  }
  void rmsnorm_residual_backward(T* dsum, float* dw, const T* dy, const T* dresid,
                                 const T* resid_out, const T* w, const float* rstd, int64_t n,
                                 int64_t h) override {
    this->timed("rmsnorm_residual_backward", [&] {
      this->inner_.rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h);
    });
  }
  void rope_forward(T* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                    int64_t hd, int64_t row_stride, int64_t pos0) override {
    this->timed("rope_forward",
                [&] { this->inner_.rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0); });
  }
  void rope_backward(T* dx, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                     int64_t hd, int64_t row_stride, int64_t pos0) override {
    this->timed("rope_backward", [&] {
      this->inner_.rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0);
    });
  }
  void attention_forward(T* out, float* lse, const T* q, const T* k, const T* v, int64_t b,
                         int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                         int64_t out_stride) override {
    this->timed("attention_forward", [&] {
      this->inner_.attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
    });
  }
  void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* out, const float* lse,
                          const T* q, const T* k, const T* v, int64_t b, int64_t s, int64_t nq,
                          int64_t nkv, int64_t hd, int64_t qkv_stride,
                          int64_t out_stride) override {
    this->timed("attention_backward", [&] {
      this->inner_.attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd,
                                      qkv_stride, out_stride);
    });
  }
  void swiglu_forward(T* h, const T* gu, int64_t n, int64_t f) override {
    this->timed("swiglu_forward", [&] { this->inner_.swiglu_forward(h, gu, n, f); });
  }
  void swiglu_backward(T* dgu, const T* dh, const T* gu, int64_t n, int64_t f) override {
    this->timed("swiglu_backward", [&] { this->inner_.swiglu_backward(dgu, dh, gu, n, f); });
  }
  void embedding_forward(T* x, const int32_t* ids, const T* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    this->timed("embedding_forward",
                [&] { this->inner_.embedding_forward(x, ids, table, n, h, vocab_begin, rows); });
  }
  void embedding_backward(float* dtable, const T* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    this->timed("embedding_backward",
                [&] { this->inner_.embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows); });
  }
  void cross_entropy_forward(float* losses, const T* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    this->timed("cross_entropy_forward", [&] {
      this->inner_.cross_entropy_forward(losses, logits, targets, n, vpad, vocab);
    });
  }
  void cross_entropy_forward_backward(float* losses, T* dlogits, const T* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    this->timed("cross_entropy_forward_backward", [&] {
      this->inner_.cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab,
                                                  dscale);
    });
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const T* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    this->timed("cross_entropy_local_max", [&] {
      this->inner_.cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols,
                                           col_begin, vocab);
    });
  }
  void add_inplace(T* y, const T* x, int64_t n) override {
    this->timed("add_inplace", [&] { this->inner_.add_inplace(y, x, n); });
  }
};

template <typename Base, typename H>
class TimedMixedKernels : public TimedKernels<Base, H> {
 public:
  using TimedKernels<Base, H>::TimedKernels;
  void cross_entropy_local_sum_exp(double* sum_exp, const H* logits, const float* row_max,
                                   int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    this->timed("cross_entropy_local_sum_exp", [&] {
      this->inner_.cross_entropy_local_sum_exp(sum_exp, logits, row_max, n, cols, col_begin, vocab);
    });
  }
  void cross_entropy_finish(float* losses, H* dlogits, const H* logits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            int64_t vocab, float dscale) override {
    this->timed("cross_entropy_finish", [&] {
      this->inner_.cross_entropy_finish(losses, dlogits, logits, row_max, sum_exp, target_logit,
                                        targets, n, cols, col_begin, vocab, dscale);
    });
  }
  void to_half(H* y, const float* x, int64_t n) override {
    this->timed("to_half", [&] { this->inner_.to_half(y, x, n); });
  }
  void to_fp32(float* y, const H* x, int64_t n) override {
    this->timed("to_fp32", [&] { this->inner_.to_fp32(y, x, n); });
  }
  void adamw_step(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    this->timed("adamw_step", [&] {
      this->inner_.adamw_step(p, p_half, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step,
                              grad_scale);
    });
  }
};

class TimedBackend final
    : public TimedMixedKernels<TimedMixedKernels<TimedKernels<TimedCalls, float>, bf16>, fp16> {
 public:
  using TimedMixedKernels::TimedMixedKernels;
  void cross_entropy_local_sum_exp(double* sum_exp, float* exps, const float* logits,
                                   const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    timed("cross_entropy_local_sum_exp", [&] {
      inner_.cross_entropy_local_sum_exp(sum_exp, exps, logits, row_max, n, cols, col_begin, vocab);
    });
  }
  void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            float dscale) override {
    timed("cross_entropy_finish", [&] {
      inner_.cross_entropy_finish(losses, dlogits, row_max, sum_exp, target_logit, targets, n, cols,
                                  col_begin, dscale);
    });
  }
  double sum(const float* x, int64_t n) override {
    return timed("sum", [&] { return inner_.sum(x, n); });
  }
  double sum_squares(const float* x, int64_t n) override {
    return timed("sum_squares", [&] { return inner_.sum_squares(x, n); });
  }
  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
                  float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    timed("adamw_step", [&] {
      inner_.adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
    });
  }
  bool any_non_finite(const float* x, int64_t n) override {
    return timed("any_non_finite", [&] { return inner_.any_non_finite(x, n); });
  }
};

}  // namespace mds::ops
