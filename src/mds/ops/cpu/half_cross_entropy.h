// The 16-bit cross entropy of the CPU reference (half_reference.h): the fp32 kernels of
// cross_entropy.cpp on the exact fp32 values of the 16-bit logits; losses and the pass statistics
// fp32, dlogits = (softmax - onehot) * dscale rounded once (0 on padding). The vocab-parallel
// passes keep no probabilities between them (ops_cuda.h: a 16-bit copy would round them twice):
// local_sum_exp only sums, and the finish recomputes the exponentials of its logits against the
// given row_max (the fp32 pass 2 into scratch) before the fp32 finish scales them by the given
// sum_exp. dlogits may alias logits: the logits are widened before anything is written.
#pragma once

#include <cstddef>
#include <vector>

#include "mds/core/fp16.h"
#include "mds/ops/cpu/half_scratch.h"
#include "mds/ops/ops.h"

namespace mds::ops {

using half_scratch::narrow;
using half_scratch::widen;

template <typename H>
void cross_entropy_forward(float* losses, const H* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab) {
  const std::vector<float> x32 = widen(logits, n * vpad);
  cross_entropy_forward(losses, x32.data(), targets, n, vpad, vocab);
}

template <typename H>
void cross_entropy_forward_backward(float* losses, H* dlogits, const H* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale) {
  if (!dlogits) return cross_entropy_forward(losses, logits, targets, n, vpad, vocab);
  std::vector<float> x32 = widen(logits, n * vpad);
  cross_entropy_forward_backward(losses, x32.data(), x32.data(), targets, n, vpad, vocab, dscale);
  narrow(dlogits, x32.data(), n * vpad);
}

template <typename H>
void cross_entropy_local_max(float* row_max, float* target_logit, const H* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab) {
  const std::vector<float> x32 = widen(logits, n * cols);
  cross_entropy_local_max(row_max, target_logit, x32.data(), targets, n, cols, col_begin, vocab);
}

template <typename H>
void cross_entropy_local_sum_exp(double* sum_exp, const H* logits, const float* row_max, int64_t n,
                                 int64_t cols, int64_t col_begin, int64_t vocab) {
  const std::vector<float> x32 = widen(logits, n * cols);
  cross_entropy_local_sum_exp(sum_exp, nullptr, x32.data(), row_max, n, cols, col_begin, vocab);
}

template <typename H>
void cross_entropy_finish(float* losses, H* dlogits, const H* logits, const float* row_max,
                          const double* sum_exp, const float* target_logit, const int32_t* targets,
                          int64_t n, int64_t cols, int64_t col_begin, int64_t vocab, float dscale) {
  if (!dlogits)
    return cross_entropy_finish(losses, nullptr, row_max, sum_exp, target_logit, targets, n, cols,
                                col_begin, dscale);
  std::vector<float> e32 = widen(logits, n * cols);
  std::vector<double> unused(static_cast<size_t>(n));  // this rank's partial sums again
  cross_entropy_local_sum_exp(unused.data(), e32.data(), e32.data(), row_max, n, cols, col_begin,
                              vocab);
  cross_entropy_finish(losses, e32.data(), row_max, sum_exp, target_logit, targets, n, cols,
                       col_begin, dscale);
  narrow(dlogits, e32.data(), n * cols);
}

}  // namespace mds::ops
