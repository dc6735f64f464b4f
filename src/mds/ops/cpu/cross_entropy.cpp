// Cross entropy over a padded vocabulary on the CPU. Columns >= vocab are padding (the
// vocabulary is padded so that it divides evenly across tensor-parallel ranks): they take no
// part in the max or the sum and receive a zero gradient. The log-sum-exp subtracts the row
// max and sums exp() in float blocks added in double, so long rows (128k vocab) lose no
// precision; the exponentials are computed once and become the gradient. Rows in parallel.
#include <algorithm>
#include <cmath>
#include <limits>

#include "mds/core/error.h"
#include "mds/ops/cpu/fast_exp.h"
#include "mds/ops/ops.h"
#include "mds/ops/targets.h"

namespace mds::ops {

namespace {

float row_max_of(const float* x, int64_t vocab) {
  float mx = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : mx)
  for (int64_t j = 0; j < vocab; ++j) mx = std::max(mx, x[j]);
  return mx;
}

// sum_j exp(x[j] - mx), also stored into e[j] when e is given (e may alias x). Blocks of 1024
// are summed in float (vectorised), the blocks in double.
double sum_exp(const float* x, float* e, int64_t vocab, float mx) {
  double sum = 0.0;
  for (int64_t j0 = 0; j0 < vocab; j0 += 1024) {
    const int64_t j1 = std::min(vocab, j0 + 1024);
    float block = 0.0f;
    if (e) {
#pragma omp simd reduction(+ : block)
      for (int64_t j = j0; j < j1; ++j) block += e[j] = fast_exp(x[j] - mx);
    } else {
#pragma omp simd reduction(+ : block)
      for (int64_t j = j0; j < j1; ++j) block += fast_exp(x[j] - mx);
    }
    sum += block;
  }
  return sum;
}

}  // namespace

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab) {
  check_targets(targets, n, vocab);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* x = logits + i * vpad;
    const float mx = row_max_of(x, vocab);
    losses[i] = static_cast<float>(std::log(sum_exp(x, nullptr, vocab, mx)) + mx - x[targets[i]]);
  }
}

void cross_entropy_forward_backward(float* losses, float* dlogits, const float* logits,
                                    const int32_t* targets, int64_t n, int64_t vpad, int64_t vocab,
                                    float dscale) {
  check_targets(targets, n, vocab);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* x = logits + i * vpad;
    float* dx = dlogits + i * vpad;  // may be x itself: every x[j] is read before dx[j] is written
    const int64_t t = targets[i];
    const float mx = row_max_of(x, vocab), xt = x[t];
    const double sum = sum_exp(x, dx, vocab, mx);  // dx = exp(x - mx)
    losses[i] = static_cast<float>(std::log(sum) + mx - xt);
    const float scale = static_cast<float>(dscale / sum);
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) dx[j] *= scale;
    dx[t] -= dscale;
    for (int64_t j = vocab; j < vpad; ++j) dx[j] = 0.0f;
  }
}

// ---- The three passes of the vocab-parallel form ----------------------------------------

namespace {
// Columns of this rank's slice that are real vocabulary (the rest is padding).
int64_t real_columns(int64_t cols, int64_t col_begin, int64_t vocab) {
  return std::clamp<int64_t>(vocab - col_begin, 0, cols);
}
}  // namespace

void cross_entropy_local_max(float* row_max, float* target_logit, const float* logits,
                             const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                             int64_t vocab) {
  check_targets(targets, n, vocab);
  const int64_t real = real_columns(cols, col_begin, vocab);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* x = logits + i * cols;
    row_max[i] = row_max_of(x, real);
    const int64_t t = targets[i] - col_begin;
    target_logit[i] = t >= 0 && t < cols ? x[t] : 0.0f;
  }
}

void cross_entropy_local_sum_exp(double* sum_exp_out, float* exps, const float* logits,
                                 const float* row_max, int64_t n, int64_t cols, int64_t col_begin,
                                 int64_t vocab) {
  const int64_t real = real_columns(cols, col_begin, vocab);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float* e = exps ? exps + i * cols : nullptr;
    sum_exp_out[i] = sum_exp(logits + i * cols, e, real, row_max[i]);
    if (e)
      for (int64_t j = real; j < cols; ++j) e[j] = 0.0f;
  }
}

void cross_entropy_finish(float* losses, float* dlogits, const float* row_max,
                          const double* sum_exp_in, const float* target_logit,
                          const int32_t* targets, int64_t n, int64_t cols, int64_t col_begin,
                          float dscale) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    losses[i] = static_cast<float>(std::log(sum_exp_in[i]) + row_max[i] - target_logit[i]);
    if (!dlogits) continue;
    float* dx = dlogits + i * cols;
    const float scale = static_cast<float>(dscale / sum_exp_in[i]);
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dx[j] *= scale;
    const int64_t t = targets[i] - col_begin;
    if (t >= 0 && t < cols) dx[t] -= dscale;
  }
}

}  // namespace mds::ops
