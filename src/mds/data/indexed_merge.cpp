// Merging Megatron indexed datasets (tools/merge_datasets.py semantics), through the same
// writer as mds preprocess, so the merged pair is exactly what one preprocessing run writes.
#include "mds/data/indexed_merge.h"

#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"

namespace mds::data {

namespace fs = std::filesystem;

namespace {

std::string strip_extension(const std::string& v) {
  for (const char* ext : {".bin", ".idx"}) {
    const std::string e = ext;
    if (v.size() > e.size() && v.compare(v.size() - e.size(), e.size(), e) == 0)
      return v.substr(0, v.size() - e.size());
  }
  return v;
}

std::vector<std::string> prefixes_in_dir(const std::string& dir) {
  std::set<std::string> prefixes;  // sorted, as merge_datasets.py's sorted(prefixes)
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string ext = entry.path().extension().string();
    if (ext != ".bin" && ext != ".idx") continue;
    const fs::path prefix = entry.path().parent_path() / entry.path().stem();
    const fs::path pair = fs::path(prefix.string() + (ext == ".bin" ? ".idx" : ".bin"));
    MDS_CHECK(fs::is_regular_file(pair), "--input {}: {} has no matching {}; remove it or add it",
              dir, entry.path().string(), pair.string());
    prefixes.insert(prefix.string());
  }
  MDS_CHECK(!ec, "--input {}: cannot list the directory ({})", dir, ec.message());
  MDS_CHECK(!prefixes.empty(), "--input {}: the directory holds no .bin/.idx pair to merge", dir);
  return {prefixes.begin(), prefixes.end()};
}

}  // namespace

std::vector<std::string> expand_merge_inputs(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const std::string& v : values) {
    if (fs::is_directory(v)) {
      for (auto& p : prefixes_in_dir(v)) out.push_back(std::move(p));
    } else if (v.find_first_of("*?[") != std::string::npos && !fs::exists(v) &&
               !fs::exists(v + ".idx")) {
      // A quoted glob ('shards/*.bin', 'shards/*'): its matches' prefixes, sorted, each once.
      glob_t g{};
      const int rc = ::glob(v.c_str(), 0, nullptr, &g);
      std::set<std::string> prefixes;
      if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) {
          const std::string m = strip_extension(g.gl_pathv[i]);
          if (m != g.gl_pathv[i]) prefixes.insert(m);
        }
      ::globfree(&g);
      MDS_CHECK(!prefixes.empty(), "--input {}: the glob matches no .bin/.idx file", v);
      out.insert(out.end(), prefixes.begin(), prefixes.end());
    } else {
      out.push_back(strip_extension(v));
    }
  }
  MDS_CHECK(!out.empty(), "--merge: no input datasets given (--input PREFIX... or --input DIR)");
  return out;
}

MergeStats merge_indexed_datasets(const std::vector<std::string>& prefixes,
                                  const std::string& output_prefix) {
  MDS_CHECK(!prefixes.empty(), "--merge: no input datasets given");
  // Pass 1: check every input before writing anything.
  TokenDType dtype{};
  std::error_code ec;
  for (size_t i = 0; i < prefixes.size(); ++i) {
    const std::string& p = prefixes[i];
    MDS_CHECK(!fs::equivalent(p + ".bin", output_prefix + ".bin", ec),
              "--merge: the output {} is also an input; choose another --output-prefix",
              output_prefix);
    IndexedDataset ds(p);  // validates the header and the sizes against the .bin
    if (i == 0) dtype = ds.dtype();
    MDS_CHECK(ds.dtype() == dtype,
              "--merge: {} has token dtype code {} but {} has {}; all inputs must share one dtype "
              "(tokenize them with the same tokenizer)",
              p, int(ds.dtype()), prefixes[0], int(dtype));
    // add_index keeps every sequence but drops the first boundary; the result equals writing
    // the documents one by one only when the boundaries run from 0 to the last sequence.
    MDS_CHECK(ds.num_doc_idx() >= 1 && ds.doc_idx(0) == 0 &&
                  ds.doc_idx(ds.num_doc_idx() - 1) == ds.num_sequences(),
              "{}.idx: the document index does not cover the sequences (first boundary {}, last "
              "{}, {} sequences); re-run mds preprocess to rebuild it",
              p, ds.num_doc_idx() ? ds.doc_idx(0) : -1,
              ds.num_doc_idx() ? ds.doc_idx(ds.num_doc_idx() - 1) : -1, ds.num_sequences());
    for (int64_t d = 1; d < ds.num_doc_idx(); ++d)
      MDS_CHECK(ds.doc_idx(d) >= ds.doc_idx(d - 1),
                "{}.idx: document boundaries decrease at {}; re-run mds preprocess", p, d);
  }

  // Pass 2: copy document by document.
  MergeStats stats;
  IndexedDatasetWriter out(output_prefix, dtype);
  std::vector<int32_t> tokens, lengths;
  for (const std::string& p : prefixes) {
    IndexedDataset ds(p);
    for (int64_t d = 0; d + 1 < ds.num_doc_idx(); ++d) {
      tokens.clear();
      lengths.clear();
      for (int64_t s = ds.doc_idx(d); s < ds.doc_idx(d + 1); ++s) {
        const int32_t n = ds.size(s);
        lengths.push_back(n);
        tokens.resize(tokens.size() + size_t(n));
        ds.read(s, 0, n, tokens.data() + tokens.size() - size_t(n));
      }
      out.add_document(tokens, lengths);
      stats.tokens += int64_t(tokens.size());
    }
    stats.datasets += 1;
    stats.documents += ds.num_doc_idx() - 1;
    stats.sequences += ds.num_sequences();
  }
  out.finalize();
  return stats;
}

}  // namespace mds::data
