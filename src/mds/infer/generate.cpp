#include "mds/infer/generate.h"

#include <algorithm>
#include <chrono>

#include "mds/core/error.h"

namespace mds::infer {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Generation generate(Decoder& decoder, std::span<const int32_t> prompt, const GenerateOptions& o) {
  MDS_ASSERT(!prompt.empty() && int64_t(prompt.size()) <= decoder.capacity(),
             "prompt of {} tokens for a cache of {}", prompt.size(), decoder.capacity());
  const int64_t vocab = decoder.config().vocab_size;
  const size_t cols = size_t(o.vocab_limit > 0 ? std::min(o.vocab_limit, vocab) : vocab);
  TokenSampler sampler(o.sampling, o.seed);
  Generation g;
  decoder.reset();
  auto start = std::chrono::steady_clock::now();
  const float* logits = decoder.forward(prompt.data(), int64_t(prompt.size()));
  g.prefill_seconds = seconds_since(start);
  start = std::chrono::steady_clock::now();
  while (int64_t(g.tokens.size()) < o.max_new_tokens) {
    const int32_t next = sampler.next({logits, cols});
    if (o.stop_token && next == *o.stop_token) {
      g.stop = StopReason::stop_token;
      break;
    }
    g.tokens.push_back(next);
    if (int64_t(g.tokens.size()) == o.max_new_tokens) break;
    if (decoder.length() == decoder.capacity()) {
      g.stop = StopReason::context_full;
      break;
    }
    logits = decoder.forward(&next, 1);
  }
  g.decode_seconds = seconds_since(start);
  return g;
}

}  // namespace mds::infer
