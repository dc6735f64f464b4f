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
  // Token ids from most to least likely (ties: lower id first). Only the first k need ordering
  // under top-k; top-p needs the order of the whole kept set.
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto before = [&](int32_t a, int32_t b) {
    return logits[size_t(a)] > logits[size_t(b)] ||
           (logits[size_t(a)] == logits[size_t(b)] && a < b);
  };
  size_t keep = n;
  if (o.top_k > 0 && size_t(o.top_k) < n) {
    keep = size_t(o.top_k);
    std::partial_sort(order.begin(), order.begin() + ptrdiff_t(keep), order.end(), before);
  } else {
    std::sort(order.begin(), order.end(), before);
  }
  const double inv_t = 1.0 / o.temperature;
  const double top = double(logits[size_t(order[0])]) * inv_t;
  probs.assign(n, 0.0);
  double sum = 0;
  for (size_t r = 0; r < keep; ++r) {
    const int32_t v = order[r];
    sum += probs[size_t(v)] = std::exp(double(logits[size_t(v)]) * inv_t - top);
  }
  if (o.top_p < 1.0) {
    // The smallest prefix of the ranking whose probability reaches top_p (at least one token).
    double cum = 0;
    size_t r = 0;
    while (r < keep) {
      cum += probs[size_t(order[r])] / sum;
      ++r;
      if (cum >= o.top_p) break;
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
