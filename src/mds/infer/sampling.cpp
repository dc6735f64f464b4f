#include "mds/infer/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "mds/core/error.h"

namespace mds::infer {

void check_sampling_options(const SamplingOptions& o) {
  MDS_CHECK(std::isfinite(o.temperature) && o.temperature >= 0,
            "--temperature must be >= 0 (0: greedy), got {}", o.temperature);
  MDS_CHECK(o.top_k >= 0, "--top-k must be >= 0 (0: off), got {}", o.top_k);
  MDS_CHECK(o.top_p > 0 && o.top_p <= 1, "--top-p must be in (0, 1] (1: off), got {}", o.top_p);
}

int32_t argmax(std::span<const float> logits) {
  MDS_ASSERT(!logits.empty(), "argmax of no logits");
  size_t best = 0;
  for (size_t v = 1; v < logits.size(); ++v)
    if (logits[v] > logits[best]) best = v;  // strict: the first of equal maxima wins
  return int32_t(best);
}

void sampling_distribution(std::vector<double>& probs, std::span<const float> logits,
                           const SamplingOptions& o) {
  MDS_ASSERT(o.temperature > 0 && !logits.empty(), "sampling needs temperature > 0");
  const size_t n = logits.size();
  // Most likely first; ties: the lower id first.
  auto before = [&](int32_t a, int32_t b) {
    const float la = logits[size_t(a)], lb = logits[size_t(b)];
    return la > lb || (la == lb && a < b);
  };
  std::vector<int32_t> order(n);  // the candidates are order[0, keep)
  std::iota(order.begin(), order.end(), 0);
  size_t keep = n;
  if (o.top_k > 0 && size_t(o.top_k) < n) {
    keep = size_t(o.top_k);
    std::nth_element(order.begin(), order.begin() + ptrdiff_t(keep - 1), order.end(), before);
  }
  const double inv_t = 1.0 / o.temperature;
  const float top = *std::max_element(logits.begin(), logits.end());
  probs.assign(n, 0.0);
  double sum = 0;
  for (size_t r = 0; r < keep; ++r) {
    const size_t v = size_t(order[r]);
    sum += probs[v] = std::exp((double(logits[v]) - double(top)) * inv_t);
  }
  if (o.top_p < 1.0) {
    // The smallest prefix of the ranking whose probability reaches top_p (at least one token).
    // The ranking is sorted only as far as needed, in growing blocks: a trained model's nucleus
    // is usually a few tokens of a large vocabulary.
    double cum = 0;
    size_t r = 0, sorted = 0;
    bool reached = false;
    while (!reached && r < keep) {
      if (r == sorted) {
        const size_t next = std::min(keep, std::max<size_t>(2 * sorted, 64));
        std::partial_sort(order.begin() + ptrdiff_t(sorted), order.begin() + ptrdiff_t(next),
                          order.begin() + ptrdiff_t(keep), before);
        sorted = next;
      }
      cum += probs[size_t(order[r++])] / sum;
      reached = cum >= o.top_p;
    }
    for (size_t d = r; d < keep; ++d) probs[size_t(order[d])] = 0.0;
    keep = r;
    sum = 0;
    for (size_t i = 0; i < keep; ++i) sum += probs[size_t(order[i])];
  }
  for (size_t i = 0; i < keep; ++i) probs[size_t(order[i])] /= sum;
}

TokenSampler::TokenSampler(const SamplingOptions& options, uint64_t seed)
    : options_(options), gen_(seed) {
  check_sampling_options(options);
}

int32_t TokenSampler::next(std::span<const float> logits) {
  if (options_.temperature == 0) return argmax(logits);
  sampling_distribution(probs_, logits, options_);
  // Inverse CDF in id order; u < 1 and the probabilities sum to 1, so some token is chosen
  // (the last kept one when rounding leaves the running sum just below u).
  const double u = uniform();
  double cum = 0;
  int32_t last = -1;
  for (size_t v = 0; v < probs_.size(); ++v) {
    if (probs_[v] == 0.0) continue;
    cum += probs_[v];
    last = int32_t(v);
    if (u < cum) return last;
  }
  return last;
}

}  // namespace mds::infer
