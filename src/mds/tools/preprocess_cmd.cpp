// mds preprocess: JSONL -> Megatron .bin/.idx, byte-identical to upstream Megatron-LM's
// tools/preprocess_data.py (document level, no sentence splitting).
//
// Streaming with bounded memory: the main thread reads chunks of lines, at most --workers chunks
// are tokenized at once, each on its own thread (Tokenizer::encode is thread-safe), and chunks
// are written strictly in input order, so the output does not depend on --workers.
//
// Per line and json key, as Megatron's Encoder.encode: the value is one text (a string) or a
// list of texts (each its own sequence); texts that tokenize to nothing are dropped; with
// --append-eod the EOD id goes after the document's last token and counts in its last sequence.
// Differences from upstream, on purpose: every key's .idx is finalized (upstream finalizes only
// the last key's), blank lines are skipped, and a bad line is an error naming its line number
// rather than a traceback.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"
#include "mds/data/tokenizer.h"
#include "mds/tools/subcommands.h"

namespace mds::tools {
namespace {

struct Options {
  std::string input, output_prefix;
  std::vector<std::string> json_keys{"text"};
  data::TokenizerOptions tokenizer;
  bool append_eod = false;
  int workers = 0;
  int64_t log_interval = 1000;
  std::string dataset_impl = "mmap";
};

// One document's output for one key: its tokens and the lengths of its sequences.
struct EncodedDoc {
  std::vector<int32_t> tokens;
  std::vector<int32_t> lengths;
};

struct Chunk {
  int64_t first_line = 0;  // 1-based line number of lines[0]
  std::vector<std::string> lines;
};

struct EncodedChunk {
  std::vector<EncodedDoc> docs;  // [line][key], row-major
  int64_t bytes = 0;
};

EncodedDoc encode_value(const nlohmann::json& value, const data::Tokenizer& tok, bool append_eod,
                        const std::string& where) {
  EncodedDoc doc;
  auto add = [&](const nlohmann::json& text) {
    MDS_CHECK(text.is_string(), "{} is {}, expected a string or a list of strings", where,
              text.type_name());
    std::vector<int32_t> ids = tok.encode(text.get_ref<const std::string&>());
    if (ids.empty()) return;
    doc.tokens.insert(doc.tokens.end(), ids.begin(), ids.end());
    doc.lengths.push_back(int32_t(ids.size()));
  };
  if (value.is_array()) {
    for (const auto& text : value) add(text);
  } else {
    add(value);
  }
  if (append_eod && !doc.tokens.empty()) {
    doc.tokens.push_back(tok.eod());
    doc.lengths.back() += 1;
  }
  return doc;
}

EncodedChunk encode_chunk(const Chunk& chunk, const Options& o, const data::Tokenizer& tok) {
  EncodedChunk out;
  out.docs.reserve(chunk.lines.size() * o.json_keys.size());
  for (size_t i = 0; i < chunk.lines.size(); ++i) {
    const std::string& line = chunk.lines[i];
    const int64_t line_no = chunk.first_line + int64_t(i);
    out.bytes += int64_t(line.size()) + 1;
    // Blank lines are not documents (Megatron's json.loads would fail on them; we skip them).
    if (line.find_first_not_of(" \t\r\n\f\v") == std::string::npos) continue;
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      MDS_FAIL("{} line {}: not valid JSON ({}); every line must be one JSON object", o.input,
               line_no, e.what());
    }
    MDS_CHECK(obj.is_object(), "{} line {}: expected a JSON object, got {}", o.input, line_no,
              obj.type_name());
    for (const std::string& key : o.json_keys) {
      auto it = obj.find(key);
      MDS_CHECK(it != obj.end(), "{} line {}: no key \"{}\" (pass the right --json-keys)", o.input,
                line_no, key);
      out.docs.push_back(encode_value(*it, tok, o.append_eod,
                                      strfmt("{} line {} key \"{}\"", o.input, line_no, key)));
    }
  }
  return out;
}

bool parse_args(int argc, char** argv, Options& o) {
  CLI::App app{"mds preprocess: tokenize JSONL into Megatron .bin/.idx (one pair per json key)",
               "mds preprocess"};
  app.add_option("--input", o.input, "JSONL file, one JSON object per line")->required();
  app.add_option("--output-prefix", o.output_prefix, "writes PREFIX_<key>_document.bin/.idx")
      ->required();
  app.add_option("--json-keys", o.json_keys, "keys to tokenize (default: text)")->expected(1, -1);
  app.add_option("--tokenizer-type", o.tokenizer.type, "e.g. GPT2BPETokenizer")->required();
  app.add_option("--vocab-file", o.tokenizer.vocab_file, "tokenizer vocabulary");
  app.add_option("--merge-file", o.tokenizer.merge_file, "BPE merges");
  app.add_option("--tokenizer-model", o.tokenizer.tokenizer_model, "tokenizer model file");
  app.add_flag("--append-eod", o.append_eod, "append the EOD token to every non-empty document");
  app.add_option("--workers", o.workers, "tokenizer threads (default: all cores)")
      ->check(CLI::PositiveNumber);
  app.add_option("--log-interval", o.log_interval, "report progress every N documents")
      ->check(CLI::PositiveNumber);
  app.add_option("--dataset-impl", o.dataset_impl, "accepted for compatibility: only mmap")
      ->check(CLI::IsMember({"mmap"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    app.exit(e);
    return false;
  } catch (const CLI::ParseError& e) {
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    MDS_FAIL("{} (run 'mds preprocess --help' for the flags)", msg);
  }
  if (o.workers <= 0) o.workers = int(std::max(1u, std::thread::hardware_concurrency()));
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int preprocess_main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return 0;
  const auto tok = data::build_tokenizer(o.tokenizer);
  std::ifstream in(o.input, std::ios::binary);
  MDS_CHECK(in.is_open(), "--input {}: cannot open the file (does it exist?)", o.input);

  const data::TokenDType dtype = data::token_dtype_for_vocab(tok->vocab_size());
  std::vector<std::unique_ptr<data::IndexedDatasetWriter>> writers;
  for (const std::string& key : o.json_keys)
    writers.push_back(std::make_unique<data::IndexedDatasetWriter>(
        o.output_prefix + "_" + key + "_document", dtype));

  const auto t0 = std::chrono::steady_clock::now();
  int64_t docs = 0, bytes = 0, tokens = 0;
  const size_t keys = o.json_keys.size();
  auto write = [&](EncodedChunk enc) {
    bytes += enc.bytes;
    for (size_t d = 0; d < enc.docs.size() / keys; ++d) {
      for (size_t k = 0; k < keys; ++k) {
        const EncodedDoc& doc = enc.docs[d * keys + k];
        writers[k]->add_document(doc.tokens, doc.lengths);
        tokens += int64_t(doc.tokens.size());
      }
      if (++docs % o.log_interval == 0) {
        const double s = seconds_since(t0);
        std::fprintf(stderr, "Processed %lld documents (%.1f docs/s, %.2f MB/s).\n",
                     (long long)docs, double(docs) / s, double(bytes) / s / 1024 / 1024);
      }
    }
  };

  // Small chunks (256 lines or 256 KiB) keep every thread busy even on small inputs; memory is
  // bounded by workers x chunk size.
  constexpr size_t kChunkLines = 256, kChunkBytes = 1 << 18;
  std::deque<std::future<EncodedChunk>> inflight;
  int64_t line_no = 0;
  std::string line;
  while (in) {
    Chunk chunk;
    chunk.first_line = line_no + 1;
    size_t chunk_bytes = 0;
    while (chunk.lines.size() < kChunkLines && chunk_bytes < kChunkBytes &&
           std::getline(in, line)) {
      ++line_no;
      chunk_bytes += line.size();
      chunk.lines.push_back(std::move(line));
    }
    if (chunk.lines.empty()) break;
    if (inflight.size() >= size_t(o.workers)) {
      write(inflight.front().get());
      inflight.pop_front();
    }
    inflight.push_back(std::async(
        std::launch::async, [&o, &tok, c = std::move(chunk)] { return encode_chunk(c, o, *tok); }));
  }
  MDS_CHECK(!in.bad(), "--input {}: read error after line {}", o.input, line_no);
  while (!inflight.empty()) {
    write(inflight.front().get());
    inflight.pop_front();
  }
  for (auto& w : writers) w->finalize();

  const double s = seconds_since(t0);
  std::fprintf(stderr,
               "Done: %lld documents, %lld tokens, %.2f MB in %.2f s (%.1f docs/s, %.2f MB/s, %d "
               "workers) -> %s_{%s}_document.bin/.idx\n",
               (long long)docs, (long long)tokens, double(bytes) / 1024 / 1024, s, double(docs) / s,
               double(bytes) / s / 1024 / 1024, o.workers, o.output_prefix.c_str(),
               [&] {
                 std::string k;
                 for (const auto& key : o.json_keys) k += (k.empty() ? "" : ",") + key;
                 return k;
               }()
                   .c_str());
  return 0;
}

}  // namespace mds::tools
