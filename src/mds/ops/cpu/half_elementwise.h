// The element-wise 16-bit kernels of the CPU reference (half_reference.h): RoPE, SwiGLU, the
// embedding, the add, fp32 <-> 16-bit conversion and the mixed-precision AdamW. Each runs the fp32
// kernel on the exact fp32 values of its 16-bit inputs and rounds each 16-bit output once.
#pragma once

#include <cstddef>
#include <vector>

#include "mds/core/fp16.h"
#include "mds/ops/cpu/half_scratch.h"
#include "mds/ops/ops.h"

namespace mds::ops {

using half_scratch::narrow;
using half_scratch::narrow_rows;
using half_scratch::widen;
using half_scratch::widen_rows;

// ---- RoPE: the view's rows (heads * hd of every row_stride) rotated in fp32 scratch ----------

namespace half_detail {
template <typename H, typename Rotate>
void rotate_rows(H* x, int64_t rows, int64_t width, int64_t row_stride, Rotate rotate) {
  std::vector<float> x32(static_cast<size_t>(rows * width));
  widen_rows(x32.data(), width, x, row_stride, rows, width);
  rotate(x32.data(), width);
  narrow_rows(x, row_stride, x32.data(), width, rows, width);
}
}  // namespace half_detail

template <typename H>
void rope_forward(H* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0) {
  half_detail::rotate_rows(x, b * s, heads * hd, row_stride, [&](float* x32, int64_t stride) {
    rope_forward(x32, cos, sin, b, s, heads, hd, stride, pos0);
  });
}

template <typename H>
void rope_backward(H* dx, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                   int64_t hd, int64_t row_stride, int64_t pos0) {
  half_detail::rotate_rows(dx, b * s, heads * hd, row_stride, [&](float* x32, int64_t stride) {
    rope_backward(x32, cos, sin, b, s, heads, hd, stride, pos0);
  });
}

// ---- SwiGLU ----------------------------------------------------------------------------------

template <typename H>
void swiglu_forward(H* h, const H* gu, int64_t n, int64_t f) {
  const std::vector<float> gu32 = widen(gu, n * 2 * f);
  std::vector<float> h32(static_cast<size_t>(n * f));
  swiglu_forward(h32.data(), gu32.data(), n, f);
  narrow(h, h32.data(), n * f);
}

template <typename H>
void swiglu_backward(H* dgu, const H* dh, const H* gu, int64_t n, int64_t f) {
  const std::vector<float> dh32 = widen(dh, n * f);
  std::vector<float> gu32 = widen(gu, n * 2 * f);
  swiglu_backward(gu32.data(), dh32.data(), gu32.data(), n, f);  // in place (allowed)
  narrow(dgu, gu32.data(), n * 2 * f);
}

// ---- Embedding -------------------------------------------------------------------------------

template <typename H>
void embedding_forward(H* x, const int32_t* ids, const H* table, int64_t n, int64_t h,
                       int64_t vocab_begin, int64_t rows) {
  // `rows` may be INT64_MAX (the whole table) for the fp32 kernel, which never reads past the
  // ids; the scratch holds the rows up to the largest id in range.
  int64_t used = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = static_cast<int64_t>(ids[i]) - vocab_begin;
    if (r >= 0 && r < rows && r + 1 > used) used = r + 1;
  }
  const std::vector<float> table32 = widen(table, used * h);
  std::vector<float> x32(static_cast<size_t>(n * h));
  embedding_forward(x32.data(), ids, table32.data(), n, h, vocab_begin, rows);
  narrow(x, x32.data(), n * h);  // exact: a copy of 16-bit values (or zeros)
}

template <typename H>
void embedding_backward(float* dtable, const H* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows) {
  const std::vector<float> dx32 = widen(dx, n * h);
  embedding_backward(dtable, dx32.data(), ids, n, h, vocab_begin, rows);
}

// ---- Add, conversions, AdamW -----------------------------------------------------------------

template <typename H>
void add_inplace(H* y, const H* x, int64_t n) {
  const std::vector<float> x32 = widen(x, n);
  std::vector<float> y32 = widen(y, n);
  add_inplace(y32.data(), x32.data(), n);
  narrow(y, y32.data(), n);
}

template <typename H>
void to_half(H* y, const float* x, int64_t n) {
  narrow(y, x, n);
}

template <typename H>
void to_fp32(float* y, const H* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]);
}

template <typename H>
void adamw_step(float* p, H* p_half, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale) {
  adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  narrow(p_half, p, n);
}

}  // namespace mds::ops
