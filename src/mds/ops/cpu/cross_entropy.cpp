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

namespace mds::ops {

namespace {

// Targets come from data files: a token outside the vocabulary is the user's mistake (the data
// was tokenized for a larger vocabulary). Checked before the parallel loop, where throwing is
// not allowed.
void check_targets(const int32_t* targets, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; ++i)
    MDS_CHECK(targets[i] >= 0 && targets[i] < vocab,
              "target token id {} (position {}) is outside the model vocabulary [0, {}): the data "
              "was tokenized with a different tokenizer; check --vocab-size and the tokenizer",
              targets[i], i, vocab);
}

float row_max(const float* x, int64_t vocab) {
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
    const float mx = row_max(x, vocab);
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
    const float mx = row_max(x, vocab), xt = x[t];
    const double sum = sum_exp(x, dx, vocab, mx);  // dx = exp(x - mx)
    losses[i] = static_cast<float>(std::log(sum) + mx - xt);
    const float scale = static_cast<float>(dscale / sum);
#pragma omp simd
    for (int64_t j = 0; j < vocab; ++j) dx[j] *= scale;
    dx[t] -= dscale;
    for (int64_t j = vocab; j < vpad; ++j) dx[j] = 0.0f;
  }
}

}  // namespace mds::ops
