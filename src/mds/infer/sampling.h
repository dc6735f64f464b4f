// Choosing the next token from logits: greedy, or sampling with temperature, top-k and top-p
// (nucleus), applied in that order as Hugging Face's generate() does (temperature scales the
// logits; top-k keeps the k most likely tokens; top-p keeps the smallest set of most likely
// tokens whose probability reaches p; the rest get probability 0 and the kept ones are
// renormalised). Ties are broken by the lower token id everywhere, so top-k = 1 is greedy.
//
// Random numbers come from std::mt19937_64 (fully specified by the C++ standard) turned into
// uniforms by hand, one per sampled token: the same seed gives the same tokens on every
// platform and standard library.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace mds::infer {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: no top-k filter
  double top_p = 1.0;        // 1: no nucleus filter; in (0, 1]
};

// One line naming the flag when an option is out of range (a UserError).
void check_sampling_options(const SamplingOptions& o);

// The id of the largest logit (the lowest such id on ties).
int32_t argmax(std::span<const float> logits);

// probs[v] = the probability of token v after temperature, top-k and top-p (temperature > 0).
// Computed in double; the kept probabilities sum to 1 and the dropped ones are exactly 0.
void sampling_distribution(std::vector<double>& probs, std::span<const float> logits,
                           const SamplingOptions& o);

class TokenSampler {
 public:
  TokenSampler(const SamplingOptions& options, uint64_t seed);
  // The next token for these logits. Greedy (temperature 0) draws no random number.
  int32_t next(std::span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 gen_;
  std::vector<double> probs_;
  double uniform() { return double(gen_() >> 11) * 0x1.0p-53; }  // [0, 1), 53 random bits
};

}  // namespace mds::infer
