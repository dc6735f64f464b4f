// `mds generate`: text from a trained model. Loads a checkpoint (a `mds train --save` folder or
// a plain Hugging Face Llama folder) and its tokenizer (infer/checkpoint_model.h), runs the
// prompt once and samples new tokens one at a time against a KV cache (infer/generate.h), and
// prints the prompt and the continuation, detokenized together, on stdout. Timings go to
// stderr. Same checkpoint, prompt, flags, seed and OMP_NUM_THREADS: the same text.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "mds/core/error.h"
#include "mds/infer/checkpoint_model.h"
#include "mds/infer/generate.h"
#include "mds/tools/cli.h"
#include "mds/tools/subcommands.h"

namespace mds::tools {

namespace {

const char* stop_name(infer::StopReason r) {
  switch (r) {
    case infer::StopReason::stop_token:
      return "end-of-text token";
    case infer::StopReason::max_new_tokens:
      return "--max-new-tokens";
    case infer::StopReason::context_full:
      return "context full (max_position_embeddings)";
  }
  return "?";
}

}  // namespace

int generate_main(int argc, char** argv) {
  CLI::App app{"mds generate: continue a prompt with a trained model (KV-cached sampling)",
               "mds generate"};
  std::string load, prompt;
  infer::GenerateOptions o;
  bool ignore_eos = false;
  data::TokenizerOptions tok;
  app.add_option("--load", load, "checkpoint: a mds train --save folder or a Hugging Face folder")
      ->required();
  app.add_option("--prompt", prompt, "the text to continue")->required();
  app.add_option("--max-new-tokens", o.max_new_tokens, "tokens to generate at most (64)");
  app.add_option("--temperature", o.sampling.temperature, "0: greedy; default 1");
  app.add_option("--top-k", o.sampling.top_k, "sample from the k most likely tokens (0: off)");
  app.add_option("--top-p", o.sampling.top_p, "nucleus: the most likely tokens up to p (1: off)");
  app.add_option("--seed", o.seed, "random seed of the sampler (1234)");
  app.add_flag("--ignore-eos", ignore_eos, "do not stop at the end-of-text token");
  add_tokenizer_flags(app, tok, "default: the checkpoint's (see the README)");
  if (!parse_command_line(app, argc, argv, "generate")) return 0;
  infer::check_sampling_options(o.sampling);
  MDS_CHECK(o.max_new_tokens >= 0, "--max-new-tokens must be >= 0 (got {})", o.max_new_tokens);

  // Everything a user can get wrong is checked before the weights are read.
  const infer::CheckpointModel cm = infer::open_checkpoint(load);
  const model::LlamaConfig& c = cm.config;
  const infer::ResolvedTokenizer rt = infer::checkpoint_tokenizer(cm, tok);
  MDS_CHECK(rt.tokenizer,
            "no tokenizer for {}: pass --tokenizer-type and its files (as to mds train), or put "
            "tokenizer.json or tokenizer.model in the checkpoint folder",
            cm.dir);
  const data::Tokenizer& tokenizer = *rt.tokenizer;
  const std::vector<int32_t> ids = tokenizer.encode(prompt);
  MDS_CHECK(!ids.empty(), "the prompt is empty after tokenization: give some text to continue");
  MDS_CHECK(int64_t(ids.size()) <= c.max_position_embeddings,
            "the prompt is {} tokens, longer than the model's context of {} "
            "(max_position_embeddings): shorten it",
            ids.size(), c.max_position_embeddings);
  for (int32_t id : ids)
    MDS_CHECK(id >= 0 && id < c.vocab_size,
              "the prompt has token id {}, outside the model's vocabulary [0, {}): the tokenizer "
              "({}) does not match the checkpoint",
              id, c.vocab_size, rt.source);
  if (!ignore_eos) o.stop_token = infer::stop_token(cm, &tokenizer);
  o.vocab_limit = tokenizer.vocab_size();  // only ids the tokenizer can write out

  const int64_t capacity = std::min(c.max_position_embeddings,
                                    int64_t(ids.size()) + std::max<int64_t>(o.max_new_tokens, 1));
  infer::Decoder decoder(c, infer::load_weights(cm), capacity);
  // Provenance and timings go to stderr, once nothing can fail: stdout is the text alone.
  std::fprintf(stderr, "> model %s: %lld layers, hidden %lld, vocab %lld, context %lld\n",
               cm.dir.c_str(), (long long)c.num_layers, (long long)c.hidden_size,
               (long long)c.vocab_size, (long long)c.max_position_embeddings);
  std::fprintf(stderr, "> tokenizer: %s\n", rt.source.c_str());
  const infer::Generation g = infer::generate(decoder, ids, o);

  std::vector<int32_t> all = ids;
  all.insert(all.end(), g.tokens.begin(), g.tokens.end());
  const std::string text = tokenizer.decode(all);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  std::fprintf(stderr,
               "> prompt %zu tokens in %.3f s; generated %zu tokens in %.3f s (%.1f tokens/s); "
               "stopped by %s\n",
               ids.size(), g.prefill_seconds, g.tokens.size(), g.decode_seconds,
               g.decode_seconds > 0 ? double(g.tokens.size()) / g.decode_seconds : 0.0,
               stop_name(g.stop));
  return 0;
}

}  // namespace mds::tools
