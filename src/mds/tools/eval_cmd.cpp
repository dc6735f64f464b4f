// `mds eval`: the perplexity of a trained model on a text or a tokenized dataset, as defined in
// infer/evaluate.h (consecutive non-overlapping windows of --seq-length + 1 tokens). Prints one
// line on stdout:  windows=W tokens=T loss=L ppl=P
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mds/core/error.h"
#include "mds/infer/checkpoint_model.h"
#include "mds/infer/evaluate.h"
#include "mds/tools/cli.h"
#include "mds/tools/subcommands.h"

namespace mds::tools {

int eval_main(int argc, char** argv) {
  CLI::App app{"mds eval: mean next-token loss and perplexity of a trained model", "mds eval"};
  std::string load, text_file, data_path;
  int64_t seq_length = 0, micro_batch = 4;
  data::TokenizerOptions tok;
  app.add_option("--load", load, "checkpoint: a mds train --save folder or a Hugging Face folder")
      ->required();
  auto* text_opt =
      app.add_option("--text-file", text_file, "a text, tokenized whole (no BOS/EOD added)");
  auto* data_opt = app.add_option("--data-path", data_path, "PREFIX of a .bin/.idx dataset");
  text_opt->excludes(data_opt);
  app.add_option("--seq-length", seq_length, "N: windows of N+1 tokens, N predictions each")
      ->required();
  app.add_option("--micro-batch-size", micro_batch, "windows per forward pass (4)");
  add_tokenizer_flags(app, tok, "for --text-file; default: the checkpoint's");
  if (!parse_command_line(app, argc, argv, "eval")) return 0;
  MDS_CHECK(!text_file.empty() || !data_path.empty(), "give --text-file F or --data-path PREFIX");
  MDS_CHECK(micro_batch > 0, "--micro-batch-size must be positive (got {})", micro_batch);

  const infer::CheckpointModel cm = infer::open_checkpoint(load);
  MDS_CHECK(seq_length > 0 && seq_length <= cm.config.max_position_embeddings,
            "--seq-length {} must be in [1, {}] (the model's max_position_embeddings)", seq_length,
            cm.config.max_position_embeddings);
  std::unique_ptr<infer::TokenStream> stream;
  std::string source;  // for the log line
  if (!text_file.empty()) {
    const infer::ResolvedTokenizer rt = infer::checkpoint_tokenizer(cm, tok);
    MDS_CHECK(rt.tokenizer,
              "no tokenizer for {}: pass --tokenizer-type and its files (as to mds train), or put "
              "tokenizer.json or tokenizer.model in the checkpoint folder",
              cm.dir);
    std::ifstream in(text_file, std::ios::binary);
    MDS_CHECK(in, "cannot read --text-file {}", text_file);
    std::ostringstream text;
    text << in.rdbuf();
    stream = std::make_unique<infer::VectorTokenStream>(rt.tokenizer->encode(text.str()));
    source = text_file + " (" + rt.source + ")";
  } else {
    stream = std::make_unique<infer::DatasetTokenStream>(data_path);
    source = data_path;
  }
  MDS_CHECK(stream->size() >= seq_length + 1,
            "{} has {} tokens, fewer than one window of --seq-length + 1 = {}",
            text_file.empty() ? data_path : text_file, stream->size(), seq_length + 1);

  model::LlamaModel m(cm.config);
  ckpt::load_hf_checkpoint(cm.dir, cm.config, m.table(), m.params().data());
  const auto start = std::chrono::steady_clock::now();
  const infer::EvalResult r = infer::evaluate(m, *stream, seq_length, micro_batch);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("windows=%lld tokens=%lld loss=%.6f ppl=%.4f\n", (long long)r.windows,
              (long long)r.tokens, r.loss, std::exp(r.loss));
  std::fflush(stdout);
  // Provenance and timing go to stderr once nothing can fail: stdout is the result line alone.
  std::fprintf(stderr, "> %s: %lld tokens, %lld dropped; model %s; %.2f s (%.0f tokens/s)\n",
               source.c_str(), (long long)stream->size(),
               (long long)(stream->size() - r.windows * (seq_length + 1)), cm.dir.c_str(), seconds,
               seconds > 0 ? double(r.tokens) / seconds : 0.0);
  return 0;
}

}  // namespace mds::tools
