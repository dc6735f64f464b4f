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

class TimedBackend final : public Backend {
 public:
  struct Stat {
    int64_t calls = 0;
    double seconds = 0;
  };

 private:
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
  explicit TimedBackend(Backend& inner) : inner_(inner) {}
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

  void linear_forward(float* y, const float* x, const float* w, int64_t m, int64_t k,
                      int64_t n) override {
    timed("linear_forward", [&] { inner_.linear_forward(y, x, w, m, k, n); });
  }
  void linear_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                       int64_t m, int64_t k, int64_t n, bool accumulate_dx) override {
    timed("linear_backward",
          [&] { inner_.linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx); });
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t h,
                       float eps) override {
    timed("rmsnorm_forward", [&] { inner_.rmsnorm_forward(y, rstd, x, w, n, h, eps); });
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                        const float* rstd, int64_t n, int64_t h) override {
    timed("rmsnorm_backward", [&] { inner_.rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h); });
  }
  void rope_forward(float* x, const float* cos, const float* sin, int64_t b, int64_t s,
                    int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    timed("rope_forward",
          [&] { inner_.rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0); });
  }
  void rope_backward(float* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                     int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    timed("rope_backward",
          [&] { inner_.rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0); });
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                         int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                         int64_t qkv_stride, int64_t out_stride) override {
    timed("attention_forward", [&] {
      inner_.attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
    });
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* out,
                          const float* lse, const float* q, const float* k, const float* v,
                          int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                          int64_t qkv_stride, int64_t out_stride) override {
    timed("attention_backward", [&] {
      inner_.attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                                out_stride);
    });
  }
  void swiglu_forward(float* h, const float* gu, int64_t n, int64_t f) override {
    timed("swiglu_forward", [&] { inner_.swiglu_forward(h, gu, n, f); });
  }
  void swiglu_backward(float* dgu, const float* dh, const float* gu, int64_t n,
                       int64_t f) override {
    timed("swiglu_backward", [&] { inner_.swiglu_backward(dgu, dh, gu, n, f); });
  }
  void embedding_forward(float* x, const int32_t* ids, const float* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    timed("embedding_forward",
          [&] { inner_.embedding_forward(x, ids, table, n, h, vocab_begin, rows); });
  }
  void embedding_backward(float* dtable, const float* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    timed("embedding_backward",
          [&] { inner_.embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows); });
  }
  void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    timed("cross_entropy_forward",
          [&] { inner_.cross_entropy_forward(losses, logits, targets, n, vpad, vocab); });
  }
  void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    timed("cross_entropy_forward_backward", [&] {
      inner_.cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab,
                                            dscale);
    });
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    timed("cross_entropy_local_max", [&] {
      inner_.cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols, col_begin,
                                     vocab);
    });
  }
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
  void add_inplace(float* y, const float* x, int64_t n) override {
    timed("add_inplace", [&] { inner_.add_inplace(y, x, n); });
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

  // bf16 (and the fused fp32 kernels that came with them)
  void rmsnorm_residual_forward(float* y, float* resid_out, float* rstd, const float* x,
                                const float* r, const float* w, int64_t n, int64_t h,
                                float eps) override {
    timed("rmsnorm_residual_forward",
          [&] { inner_.rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps); });
  }
  void rmsnorm_residual_backward(float* dsum, float* dw, const float* dy, const float* dresid,
                                 const float* resid_out, const float* w, const float* rstd,
                                 int64_t n, int64_t h) override {
    timed("rmsnorm_residual_backward", [&] {
      inner_.rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h);
    });
  }
  bool any_non_finite(const float* x, int64_t n) override {
    return timed("any_non_finite", [&] { return inner_.any_non_finite(x, n); });
  }
  void linear_forward(bf16* y, const bf16* x, const bf16* w, int64_t m, int64_t k,
                      int64_t n) override {
    timed("linear_forward", [&] { inner_.linear_forward(y, x, w, m, k, n); });
  }
  void linear_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w, int64_t m,
                       int64_t k, int64_t n, bool accumulate_dx) override {
    timed("linear_backward",
          [&] { inner_.linear_backward(dx, dw, dy, x, w, m, k, n, accumulate_dx); });
  }
  void rmsnorm_forward(bf16* y, float* rstd, const bf16* x, const bf16* w, int64_t n, int64_t h,
                       float eps) override {
    timed("rmsnorm_forward", [&] { inner_.rmsnorm_forward(y, rstd, x, w, n, h, eps); });
  }
  void rmsnorm_backward(bf16* dx, float* dw, const bf16* dy, const bf16* x, const bf16* w,
                        const float* rstd, int64_t n, int64_t h) override {
    timed("rmsnorm_backward", [&] { inner_.rmsnorm_backward(dx, dw, dy, x, w, rstd, n, h); });
  }
  void rmsnorm_residual_forward(bf16* y, bf16* resid_out, float* rstd, const bf16* x, const bf16* r,
                                const bf16* w, int64_t n, int64_t h, float eps) override {
    timed("rmsnorm_residual_forward",
          [&] { inner_.rmsnorm_residual_forward(y, resid_out, rstd, x, r, w, n, h, eps); });
  }
  void rmsnorm_residual_backward(bf16* dsum, float* dw, const bf16* dy, const bf16* dresid,
                                 const bf16* resid_out, const bf16* w, const float* rstd, int64_t n,
                                 int64_t h) override {
    timed("rmsnorm_residual_backward", [&] {
      inner_.rmsnorm_residual_backward(dsum, dw, dy, dresid, resid_out, w, rstd, n, h);
    });
  }
  void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s,
                    int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    timed("rope_forward",
          [&] { inner_.rope_forward(x, cos, sin, b, s, heads, hd, row_stride, pos0); });
  }
  void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                     int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) override {
    timed("rope_backward",
          [&] { inner_.rope_backward(dx, cos, sin, b, s, heads, hd, row_stride, pos0); });
  }
  void attention_forward(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v,
                         int64_t b, int64_t s, int64_t nq, int64_t nkv, int64_t hd,
                         int64_t qkv_stride, int64_t out_stride) override {
    timed("attention_forward", [&] {
      inner_.attention_forward(out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride, out_stride);
    });
  }
  void attention_backward(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* out,
                          const float* lse, const bf16* q, const bf16* k, const bf16* v, int64_t b,
                          int64_t s, int64_t nq, int64_t nkv, int64_t hd, int64_t qkv_stride,
                          int64_t out_stride) override {
    timed("attention_backward", [&] {
      inner_.attention_backward(dq, dk, dv, dout, out, lse, q, k, v, b, s, nq, nkv, hd, qkv_stride,
                                out_stride);
    });
  }
  void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f) override {
    timed("swiglu_forward", [&] { inner_.swiglu_forward(h, gu, n, f); });
  }
  void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n, int64_t f) override {
    timed("swiglu_backward", [&] { inner_.swiglu_backward(dgu, dh, gu, n, f); });
  }
  void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n, int64_t h,
                         int64_t vocab_begin, int64_t rows) override {
    timed("embedding_forward",
          [&] { inner_.embedding_forward(x, ids, table, n, h, vocab_begin, rows); });
  }
  void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n, int64_t h,
                          int64_t vocab_begin, int64_t rows) override {
    timed("embedding_backward",
          [&] { inner_.embedding_backward(dtable, dx, ids, n, h, vocab_begin, rows); });
  }
  void cross_entropy_forward(float* losses, const bf16* logits, const int32_t* targets, int64_t n,
                             int64_t vpad, int64_t vocab) override {
    timed("cross_entropy_forward",
          [&] { inner_.cross_entropy_forward(losses, logits, targets, n, vpad, vocab); });
  }
  void cross_entropy_forward_backward(float* losses, bf16* dlogits, const bf16* logits,
                                      const int32_t* targets, int64_t n, int64_t vpad,
                                      int64_t vocab, float dscale) override {
    timed("cross_entropy_forward_backward", [&] {
      inner_.cross_entropy_forward_backward(losses, dlogits, logits, targets, n, vpad, vocab,
                                            dscale);
    });
  }
  void cross_entropy_local_max(float* row_max, float* target_logit, const bf16* logits,
                               const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                               int64_t vocab) override {
    timed("cross_entropy_local_max", [&] {
      inner_.cross_entropy_local_max(row_max, target_logit, logits, targets, n, cols, col_begin,
                                     vocab);
    });
  }
  void cross_entropy_local_sum_exp(double* sum_exp, const bf16* logits, const float* row_max,
                                   int64_t n, int64_t cols, int64_t col_begin,
                                   int64_t vocab) override {
    timed("cross_entropy_local_sum_exp", [&] {
      inner_.cross_entropy_local_sum_exp(sum_exp, logits, row_max, n, cols, col_begin, vocab);
    });
  }
  void cross_entropy_finish(float* losses, bf16* dlogits, const bf16* logits, const float* row_max,
                            const double* sum_exp, const float* target_logit,
                            const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                            int64_t vocab, float dscale) override {
    timed("cross_entropy_finish", [&] {
      inner_.cross_entropy_finish(losses, dlogits, logits, row_max, sum_exp, target_logit, targets,
                                  n, cols, col_begin, vocab, dscale);
    });
  }
  void add_inplace(bf16* y, const bf16* x, int64_t n) override {
    timed("add_inplace", [&] { inner_.add_inplace(y, x, n); });
  }
  void to_bf16(bf16* y, const float* x, int64_t n) override {
    timed("to_bf16", [&] { inner_.to_bf16(y, x, n); });
  }
  void to_fp32(float* y, const bf16* x, int64_t n) override {
    timed("to_fp32", [&] { inner_.to_fp32(y, x, n); });
  }
  void adamw_step(float* p, bf16* p_bf16, const float* g, float* m, float* v, int64_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, int64_t step,
                  float grad_scale) override {
    timed("adamw_step", [&] {
      inner_.adamw_step(p, p_bf16, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step,
                        grad_scale);
    });
  }
};

}  // namespace mds::ops
