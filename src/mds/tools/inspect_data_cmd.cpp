// `mds inspect-data`: look inside Megatron .bin/.idx data while debugging a data pipeline.
//   --data-path PREFIX             documents, sequences, tokens, dtype, the token id range
//   --data-path PREFIX --doc I     document I's ids as one JSON array line (+ its text as a
//                                  JSON string line when tokenizer flags are given)
//   blends (--data-path w1 p1 ... or --data-file-list) with --seq-length --global-batch-size
//   --train-iters: the per-corpus table `mds train` would print (building, and so caching,
//   the index maps a training run will then load).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>

#include "mds/core/error.h"
#include "mds/data/data_file_list.h"
#include "mds/data/indexed_dataset.h"
#include "mds/data/tokenizer.h"
#include "mds/tools/cli.h"
#include "mds/tools/subcommands.h"
#include "mds/train/datasets.h"

namespace mds::tools {
namespace {

const char* dtype_name(data::TokenDType t) {
  switch (t) {
    case data::TokenDType::u8:
      return "uint8";
    case data::TokenDType::i8:
      return "int8";
    case data::TokenDType::i16:
      return "int16";
    case data::TokenDType::i32:
      return "int32";
    case data::TokenDType::i64:
      return "int64";
    case data::TokenDType::f64:
      return "float64";
    case data::TokenDType::f32:
      return "float32";
    case data::TokenDType::u16:
      return "uint16";
  }
  return "unknown";
}

void print_stats(const data::IndexedDataset& d) {
  int64_t lo = std::numeric_limits<int64_t>::max(), hi = -1, tokens = 0;
  std::vector<int32_t> buf;
  for (int64_t i = 0; i < d.num_sequences(); ++i) {
    buf.resize(size_t(d.size(i)));
    d.read(i, 0, int64_t(buf.size()), buf.data());
    tokens += int64_t(buf.size());
    for (int32_t t : buf) {
      lo = std::min<int64_t>(lo, t);
      hi = std::max<int64_t>(hi, t);
    }
  }
  std::printf("documents: %lld\n", (long long)(d.num_doc_idx() - 1));
  std::printf("sequences: %lld\n", (long long)d.num_sequences());
  std::printf("tokens: %lld\n", (long long)tokens);
  std::printf("dtype: %s\n", dtype_name(d.dtype()));
  if (hi < 0)
    std::printf("vocabulary: none (no tokens)\n");
  else
    std::printf("vocabulary: ids %lld..%lld\n", (long long)lo, (long long)hi);
}

void print_document(const data::IndexedDataset& d, int64_t doc, const data::TokenizerOptions& tok) {
  const int64_t docs = d.num_doc_idx() - 1;
  MDS_CHECK(doc >= 0 && doc < docs, "--doc {} is outside [0, {}) ({} has {} documents)", doc, docs,
            d.prefix(), docs);
  std::vector<int32_t> ids;
  for (int64_t s = d.doc_idx(doc); s < d.doc_idx(doc + 1); ++s) {
    const size_t at = ids.size();
    ids.resize(at + size_t(d.size(s)));
    d.read(s, 0, d.size(s), ids.data() + at);
  }
  std::printf("%s\n", nlohmann::json(ids).dump().c_str());
  if (!tok.type.empty()) {
    const auto tokenizer = data::build_tokenizer(tok);
    const std::string text = tokenizer->decode(ids);
    std::printf("%s\n", nlohmann::json(text)
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                            .c_str());
  }
}

}  // namespace

int inspect_data_main(int argc, char** argv) {
  CLI::App app{"mds inspect-data: statistics, documents and blend tables of .bin/.idx data",
               "mds inspect-data"};
  std::vector<std::string> data_path;
  std::string data_file_list, split = "969, 30, 1", cache_path;
  int64_t doc = -1, seq_length = 0, gbs = 0, train_iters = 0, eval_interval = 1000,
          eval_iters = 100;
  uint64_t seed = 1234;
  data::TokenizerOptions tok;
  std::vector<std::vector<std::string>> data_paths;  // per occurrence: the last one wins
  app.add_option("--data-path", data_paths, "PREFIX, or w1 PREFIX1 w2 PREFIX2 ...");
  app.add_option("--data-file-list", data_file_list, "file of 'weight prefix corpus' lines");
  app.add_option("--doc", doc, "print document I's token ids (and text with a tokenizer)");
  app.add_option("--seq-length", seq_length, "with --global-batch-size --train-iters: the table");
  app.add_option("--global-batch-size", gbs);
  app.add_option("--train-iters", train_iters);
  app.add_option("--eval-interval", eval_interval);
  app.add_option("--eval-iters", eval_iters);
  app.add_option("--split", split);
  app.add_option("--seed", seed);
  app.add_option("--data-cache-path", cache_path);
  add_tokenizer_flags(app, tok, "to print documents as text");
  if (!parse_command_line(app, argc, argv, "inspect-data")) return 0;
  if (!data_paths.empty()) data_path = data_paths.back();  // as mds train (Megatron's argparse)
  MDS_CHECK(data_path.empty() != data_file_list.empty(),
            "give exactly one of --data-path and --data-file-list");
  const std::vector<data::DataSource> sources = data_file_list.empty()
                                                    ? data::parse_data_path(data_path)
                                                    : data::read_data_file_list(data_file_list);

  if (seq_length > 0 || gbs > 0 || train_iters > 0) {
    MDS_CHECK(seq_length > 0 && gbs > 0 && train_iters > 0,
              "the blend table needs all of --seq-length, --global-batch-size and --train-iters "
              "(positive)");
    MDS_CHECK(eval_interval > 0 && eval_iters >= 0,
              "--eval-interval must be positive and --eval-iters non-negative");
    train::DataOptions o;
    o.sources = sources;
    o.blend = !data_file_list.empty() || sources.size() > 1;
    o.split = split;
    o.seq_length = int(seq_length);
    o.seed = seed;
    o.num_samples = train::megatron_num_samples(train_iters, gbs, eval_interval, eval_iters);
    o.cache_path = cache_path;
    const train::Datasets sets = train::build_datasets(o);
    std::fputs(sets.summary.table().c_str(), stdout);
    return 0;
  }
  MDS_CHECK(doc < 0 || sources.size() == 1, "--doc needs a single --data-path PREFIX");
  for (const auto& s : sources) {
    const data::IndexedDataset d(s.prefix);
    if (doc >= 0) {
      print_document(d, doc, tok);
      continue;
    }
    if (sources.size() > 1) std::printf("prefix: %s\n", s.prefix.c_str());
    print_stats(d);
  }
  return 0;
}

}  // namespace mds::tools
