// The element-wise bf16 kernels of the CPU reference (bf16_reference.h): RoPE, SwiGLU, the
// embedding, the add, fp32 <-> bf16 conversion and the mixed-precision AdamW. Each runs the fp32
// kernel on the exact fp32 values of its bf16 inputs and rounds each bf16 output once.
#include <cstddef>
#include <vector>

#include "mds/ops/cpu/bf16_reference.h"
#include "mds/ops/cpu/bf16_scratch.h"
#include "mds/ops/ops.h"

namespace mds::ops {

using bf16_scratch::narrow;
using bf16_scratch::narrow_rows;
using bf16_scratch::widen;
using bf16_scratch::widen_rows;

// ---- RoPE: the view's rows (heads * hd of every row_stride) rotated in fp32 scratch ----------

namespace {
template <typename Rotate>
void rotate_rows(bf16* x, int64_t rows, int64_t width, int64_t row_stride, Rotate rotate) {
  std::vector<float> x32(static_cast<size_t>(rows * width));
  widen_rows(x32.data(), width, x, row_stride, rows, width);
  rotate(x32.data(), width);
  narrow_rows(x, row_stride, x32.data(), width, rows, width);
}
}  // namespace

void rope_forward(bf16* x, const float* cos, const float* sin, int64_t b, int64_t s, int64_t heads,
                  int64_t hd, int64_t row_stride, int64_t pos0) {
  rotate_rows(x, b * s, heads * hd, row_stride, [&](float* x32, int64_t stride) {
    rope_forward(x32, cos, sin, b, s, heads, hd, stride, pos0);
  });
}

void rope_backward(bf16* dx, const float* cos, const float* sin, int64_t b, int64_t s,
                   int64_t heads, int64_t hd, int64_t row_stride, int64_t pos0) {
  rotate_rows(dx, b * s, heads * hd, row_stride, [&](float* x32, int64_t stride) {
    rope_backward(x32, cos, sin, b, s, heads, hd, stride, pos0);
  });
}

// ---- SwiGLU ----------------------------------------------------------------------------------

void swiglu_forward(bf16* h, const bf16* gu, int64_t n, int64_t f) {
  const std::vector<float> gu32 = widen(gu, n * 2 * f);
  std::vector<float> h32(static_cast<size_t>(n * f));
  swiglu_forward(h32.data(), gu32.data(), n, f);
  narrow(h, h32.data(), n * f);
}

void swiglu_backward(bf16* dgu, const bf16* dh, const bf16* gu, int64_t n, int64_t f) {
  const std::vector<float> dh32 = widen(dh, n * f);
  std::vector<float> gu32 = widen(gu, n * 2 * f);
  swiglu_backward(gu32.data(), dh32.data(), gu32.data(), n, f);  // in place (allowed)
  narrow(dgu, gu32.data(), n * 2 * f);
}

// ---- Embedding -------------------------------------------------------------------------------

void embedding_forward(bf16* x, const int32_t* ids, const bf16* table, int64_t n, int64_t h,
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
  narrow(x, x32.data(), n * h);  // exact: a copy of bf16 values (or zeros)
}

void embedding_backward(float* dtable, const bf16* dx, const int32_t* ids, int64_t n, int64_t h,
                        int64_t vocab_begin, int64_t rows) {
  const std::vector<float> dx32 = widen(dx, n * h);
  embedding_backward(dtable, dx32.data(), ids, n, h, vocab_begin, rows);
}

// ---- Add, conversions, AdamW -----------------------------------------------------------------

void add_inplace(bf16* y, const bf16* x, int64_t n) {
  const std::vector<float> x32 = widen(x, n);
  std::vector<float> y32 = widen(y, n);
  add_inplace(y32.data(), x32.data(), n);
  narrow(y, y32.data(), n);
}

void to_bf16(bf16* y, const float* x, int64_t n) {
  narrow(y, x, n);
}

void to_fp32(float* y, const bf16* x, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i]);
}

void adamw_step(float* p, bf16* p_bf16, const float* g, float* m, float* v, int64_t n, float lr,
                float beta1, float beta2, float eps, float weight_decay, int64_t step,
                float grad_scale) {
  adamw_step(p, g, m, v, n, lr, beta1, beta2, eps, weight_decay, step, grad_scale);
  narrow(p_bf16, p, n);
}

}  // namespace mds::ops
