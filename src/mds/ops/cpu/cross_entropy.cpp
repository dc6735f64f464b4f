// Cross entropy over a padded vocabulary on the CPU. Columns >= vocab are padding (the
// vocabulary is padded so that it divides evenly across tensor-parallel ranks): they take no
// part in the max or the sum and receive a zero gradient. The log-sum-exp subtracts the row
// max and sums exp() in double, so long rows (128k vocab) lose no precision. Rows in parallel.
#include <cmath>
#include <limits>

#include "mds/core/error.h"
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

struct RowStats {
  float max;
  double sum;  // sum of exp(x - max)
};

RowStats row_stats(const float* x, int64_t vocab) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int64_t j = 0; j < vocab; ++j) mx = x[j] > mx ? x[j] : mx;
  double sum = 0.0;
  for (int64_t j = 0; j < vocab; ++j) sum += std::exp(x[j] - mx);
  return {mx, sum};
}

}  // namespace

void cross_entropy_forward(float* losses, const float* logits, const int32_t* targets, int64_t n,
                           int64_t vpad, int64_t vocab) {
  check_targets(targets, n, vocab);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const float* x = logits + i * vpad;
    const RowStats st = row_stats(x, vocab);
    losses[i] = static_cast<float>(std::log(st.sum) + st.max - x[targets[i]]);
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
    const RowStats st = row_stats(x, vocab);
    const int64_t t = targets[i];
    losses[i] = static_cast<float>(std::log(st.sum) + st.max - x[t]);
    const float inv_sum = static_cast<float>(1.0 / st.sum);
    for (int64_t j = 0; j < vocab; ++j) dx[j] = std::exp(x[j] - st.max) * inv_sum * dscale;
    dx[t] -= dscale;
    for (int64_t j = vocab; j < vpad; ++j) dx[j] = 0.0f;
  }
}

}  // namespace mds::ops
