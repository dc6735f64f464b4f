// mds preprocess: JSONL -> Megatron .bin/.idx, byte-identical to upstream Megatron-LM's
// tools/preprocess_data.py (document level, no sentence splitting); with --merge, many
// .bin/.idx -> one, as tools/merge_datasets.py.
//
// Input (data/jsonl_reader.h): files, globs, gzip files and "-" (stdin), read in order as one
// stream. Streaming with bounded memory: the main thread reads chunks of lines, at most
// --workers chunks are tokenized at once, each on its own thread (Tokenizer::encode is
// thread-safe), and chunks are written strictly in input order, so the output does not depend
// on --workers. Memory is workers x chunk size plus the writers' sequence sizes (4 bytes per
// document and key, as Megatron's builder).
//
// Per line and json key, as Megatron's Encoder.encode: the value is one text (a string) or a
// list of texts (each its own sequence); texts that tokenize to nothing are dropped; with
// --append-eod the EOD id goes after the document's last token and counts in its last sequence.
// Differences from upstream, on purpose: every key's .idx is finalized (upstream finalizes only
// the last key's), blank lines are skipped, and a bad line is an error naming its file and line
// number rather than a traceback, or with --skip-bad-lines a warning after which the line is
// left out of every key's output.
#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <deque>
#include <future>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"
#include "mds/data/indexed_merge.h"
#include "mds/data/jsonl_reader.h"
#include "mds/data/tokenizer.h"
#include "mds/tools/subcommands.h"

namespace mds::tools {
namespace {

struct Options {
  std::vector<std::string> inputs;
  std::string output_prefix;
  std::vector<std::string> json_keys{"text"};
  data::TokenizerOptions tokenizer;
  bool append_eod = false, merge = false, skip_bad_lines = false;
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
  std::vector<std::string> lines;
  std::vector<std::pair<int, int64_t>> where;  // per line: (input file index, 1-based line)
};

struct EncodedChunk {
  std::vector<EncodedDoc> docs;      // [document][key], row-major
  std::vector<std::string> skipped;  // one message per bad line left out (--skip-bad-lines)
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

// All keys of one line, or a UserError naming file and line.
void encode_line(const std::string& line, const std::string& at, const Options& o,
                 const data::Tokenizer& tok, std::vector<EncodedDoc>& out) {
  nlohmann::json obj;
  try {
    obj = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    MDS_FAIL("{}: not valid JSON ({}); every line must be one JSON object", at, e.what());
  }
  MDS_CHECK(obj.is_object(), "{}: expected a JSON object, got {}", at, obj.type_name());
  for (const std::string& key : o.json_keys) {
    auto it = obj.find(key);
    MDS_CHECK(it != obj.end(), "{}: no key \"{}\" (pass the right --json-keys)", at, key);
    out.push_back(encode_value(*it, tok, o.append_eod, strfmt("{}: key \"{}\"", at, key)));
  }
}

EncodedChunk encode_chunk(const Chunk& chunk, const std::vector<std::string>& paths,
                          const Options& o, const data::Tokenizer& tok) {
  EncodedChunk out;
  out.docs.reserve(chunk.lines.size() * o.json_keys.size());
  std::vector<EncodedDoc> line_docs;
  for (size_t i = 0; i < chunk.lines.size(); ++i) {
    const std::string& line = chunk.lines[i];
    out.bytes += int64_t(line.size()) + 1;
    // Blank lines are not documents (Megatron's json.loads would fail on them; we skip them).
    if (line.find_first_not_of(" \t\r\n\f\v") == std::string::npos) continue;
    const auto [file, line_no] = chunk.where[i];
    const std::string at =
        strfmt("{} line {}", data::JsonlReader::display_name(paths[size_t(file)]), line_no);
    line_docs.clear();
    try {
      encode_line(line, at, o, tok, line_docs);
    } catch (const UserError& e) {
      if (!o.skip_bad_lines) throw;
      out.skipped.push_back(e.what());
      continue;  // no key of this line is written, so the outputs stay aligned
    }
    for (auto& d : line_docs) out.docs.push_back(std::move(d));
  }
  return out;
}

bool parse_args(int argc, char** argv, Options& o) {
  CLI::App app{
      "mds preprocess: tokenize JSONL into Megatron .bin/.idx (one pair per json key); "
      "with --merge, join .bin/.idx pairs into one",
      "mds preprocess"};
  app.add_option("--input", o.inputs,
                 "JSONL files, globs, .gz files or - (stdin), read in order; with --merge: "
                 "dataset prefixes or directories of .bin/.idx pairs")
      ->required()
      ->expected(1, -1);
  app.add_option("--output-prefix", o.output_prefix,
                 "writes PREFIX_<key>_document.bin/.idx (with --merge: PREFIX.bin/.idx)")
      ->required();
  app.add_flag("--merge", o.merge, "merge the --input datasets instead of tokenizing");
  app.add_option("--json-keys", o.json_keys, "keys to tokenize (default: text)")->expected(1, -1);
  app.add_option("--tokenizer-type", o.tokenizer.type, "e.g. GPT2BPETokenizer");
  app.add_option("--vocab-file", o.tokenizer.vocab_file, "tokenizer vocabulary");
  app.add_option("--merge-file", o.tokenizer.merge_file, "BPE merges");
  app.add_option("--tokenizer-model", o.tokenizer.tokenizer_model, "tokenizer model file");
  app.add_option("--vocab-size", o.tokenizer.vocab_size, "NullTokenizer: ids are < N, eod = N");
  app.add_flag("--append-eod", o.append_eod, "append the EOD token to every non-empty document");
  app.add_flag("--skip-bad-lines", o.skip_bad_lines,
               "report lines that are not JSON objects with the keys, and go on without them");
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
  MDS_CHECK(o.merge || !o.tokenizer.type.empty(),
            "--tokenizer-type is required (e.g. GPT2BPETokenizer), unless --merge");
  if (o.workers <= 0) o.workers = int(std::max(1u, std::thread::hardware_concurrency()));
  return true;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string hms(double s) {
  const long t = std::lround(s);
  return strfmt("{}:{}{}:{}{}", t / 3600, (t / 60) % 60 < 10 ? "0" : "", (t / 60) % 60,
                t % 60 < 10 ? "0" : "", t % 60);
}

int merge_main(const Options& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto prefixes = data::expand_merge_inputs(o.inputs);
  const data::MergeStats st = data::merge_indexed_datasets(prefixes, o.output_prefix);
  std::fprintf(stderr,
               "Merged %lld datasets: %lld documents, %lld sequences, %lld tokens in %.2f s -> "
               "%s.bin/.idx\n",
               (long long)st.datasets, (long long)st.documents, (long long)st.sequences,
               (long long)st.tokens, seconds_since(t0), o.output_prefix.c_str());
  return 0;
}

}  // namespace

int preprocess_main(int argc, char** argv) {
  Options o;
  if (!parse_args(argc, argv, o)) return 0;
  if (o.merge) return merge_main(o);
  const auto tok = data::build_tokenizer(o.tokenizer);
  data::JsonlReader reader(data::expand_input_paths(o.inputs));

  const data::TokenDType dtype = data::token_dtype_for_vocab(tok->vocab_size());
  std::vector<std::unique_ptr<data::IndexedDatasetWriter>> writers;
  for (const std::string& key : o.json_keys)
    writers.push_back(std::make_unique<data::IndexedDatasetWriter>(
        o.output_prefix + "_" + key + "_document", dtype));

  const auto t0 = std::chrono::steady_clock::now();
  int64_t docs = 0, bytes = 0, tokens = 0, skipped = 0;
  const size_t keys = o.json_keys.size();
  // Progress: documents, text MB (10^6 bytes of uncompressed JSONL) and MB/s; the ETA follows
  // the stored (possibly compressed) bytes read, when the input's size is known.
  auto progress = [&] {
    const double s = std::max(seconds_since(t0), 1e-9);
    std::string eta;
    const int64_t total = reader.stored_bytes_total(), read = reader.stored_bytes_read();
    if (total > 0 && read > 0)
      eta = ", ETA " + hms(s * double(std::max<int64_t>(total - read, 0)) / double(read));
    std::fprintf(stderr, "Processed %lld documents, %.2f MB, %.2f MB/s%s (%.1f docs/s).\n",
                 (long long)docs, double(bytes) / 1e6, double(bytes) / 1e6 / s, eta.c_str(),
                 double(docs) / s);
  };
  auto write = [&](EncodedChunk enc) {
    bytes += enc.bytes;
    for (const std::string& msg : enc.skipped)
      std::fprintf(stderr, "warning: skipped %s\n", msg.c_str());
    skipped += int64_t(enc.skipped.size());
    for (size_t d = 0; d < enc.docs.size() / keys; ++d) {
      for (size_t k = 0; k < keys; ++k) {
        const EncodedDoc& doc = enc.docs[d * keys + k];
        writers[k]->add_document(doc.tokens, doc.lengths);
        tokens += int64_t(doc.tokens.size());
      }
      if (++docs % o.log_interval == 0) progress();
    }
  };

  // Small chunks (256 lines or 256 KiB) keep every thread busy even on small inputs; memory is
  // bounded by workers x chunk size.
  constexpr size_t kChunkLines = 256, kChunkBytes = 1 << 18;
  std::deque<std::future<EncodedChunk>> inflight;
  std::string line;
  for (bool more = true; more;) {
    Chunk chunk;
    size_t chunk_bytes = 0;
    while (chunk.lines.size() < kChunkLines && chunk_bytes < kChunkBytes) {
      if (!(more = reader.next(line))) break;
      chunk_bytes += line.size();
      chunk.lines.push_back(std::move(line));
      chunk.where.emplace_back(reader.file_index(), reader.line_number());
    }
    if (chunk.lines.empty()) break;
    if (inflight.size() >= size_t(o.workers)) {
      write(inflight.front().get());
      inflight.pop_front();
    }
    inflight.push_back(std::async(std::launch::async, [&o, &tok, &reader, c = std::move(chunk)] {
      return encode_chunk(c, reader.paths(), o, *tok);
    }));
  }
  while (!inflight.empty()) {
    write(inflight.front().get());
    inflight.pop_front();
  }
  for (auto& w : writers) w->finalize();

  const double s = seconds_since(t0);
  std::string key_list;
  for (const auto& key : o.json_keys) key_list += (key_list.empty() ? "" : ",") + key;
  const std::string skip_note = skipped ? strfmt(", {} bad lines skipped", skipped) : std::string();
  std::fprintf(stderr,
               "Done: %lld documents, %lld tokens, %.2f MB in %.2f s (%.1f docs/s, %.2f MB/s, %d "
               "workers%s) -> %s_{%s}_document.bin/.idx\n",
               (long long)docs, (long long)tokens, double(bytes) / 1e6, s, double(docs) / s,
               double(bytes) / 1e6 / s, o.workers, skip_note.c_str(), o.output_prefix.c_str(),
               key_list.c_str());
  return 0;
}

}  // namespace mds::tools
