// Autoregressive generation with a KV cache: the prompt runs through the model once (prefill),
// then each new token is one decoding step of a single position against the cache.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "mds/infer/decoder.h"
#include "mds/infer/sampling.h"

namespace mds::infer {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingOptions sampling;
  uint64_t seed = 1234;
  std::optional<int32_t> stop_token;  // EOS / EOD: generation ends when it is sampled
  int64_t vocab_limit = 0;            // > 0: only ids below it may be sampled (the tokenizer's)
};

enum class StopReason { stop_token, max_new_tokens, context_full };

struct Generation {
  std::vector<int32_t> tokens;  // the new tokens, without the stop token
  StopReason stop = StopReason::max_new_tokens;
  double prefill_seconds = 0, decode_seconds = 0;
};

// The decoder's cache is reset first. The prompt must be non-empty and fit the cache
// (prompt.size() <= decoder.capacity()); a token is sampled after every position, so at most
// capacity() - prompt.size() + 1 new tokens come out (the last one is never fed back).
Generation generate(Decoder& decoder, std::span<const int32_t> prompt, const GenerateOptions& o);

}  // namespace mds::infer
