// mds preprocess --merge (data/indexed_merge): merging shards equals writing all their
// documents in one run, byte for byte (Megatron's add_index), and bad inputs fail before any
// output exists.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"
#include "mds/data/indexed_merge.h"

namespace fs = std::filesystem;
using mds::data::IndexedDatasetWriter;
using mds::data::TokenDType;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "mds_prep_merge_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A document of several sequences (Megatron's list-of-texts values), or empty.
struct Doc {
  std::vector<int32_t> tokens, lengths;
};

std::vector<Doc> random_docs(int n, int32_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<Doc> docs(static_cast<size_t>(n));
  for (Doc& doc : docs) {
    if (gen() % 6 == 0) continue;  // empty: a repeated document boundary
    const int seqs = 1 + int(gen() % 3);
    for (int s = 0; s < seqs; ++s) {
      const int32_t len = 1 + int32_t(gen() % 20);
      doc.lengths.push_back(len);
      for (int32_t k = 0; k < len; ++k) doc.tokens.push_back(int32_t(gen() % uint32_t(vocab)));
    }
  }
  return docs;
}

void write(const std::string& prefix, const std::vector<Doc>& docs, size_t begin, size_t end,
           TokenDType dtype = TokenDType::u16) {
  IndexedDatasetWriter w(prefix, dtype);
  for (size_t i = begin; i < end; ++i) w.add_document(docs[i].tokens, docs[i].lengths);
  w.finalize();
}

void expect_same_files(const std::string& a, const std::string& b) {
  for (const char* ext : {".bin", ".idx"}) {
    const std::string x = read_bytes(a + ext), y = read_bytes(b + ext);
    EXPECT_EQ(x.size(), y.size()) << a << ext;
    EXPECT_TRUE(x == y) << a << ext << " differs from " << b << ext;
  }
}

std::string merge_error(const std::vector<std::string>& inputs, const std::string& out) {
  try {
    mds::data::merge_indexed_datasets(mds::data::expand_merge_inputs(inputs), out);
  } catch (const mds::UserError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(IndexedMerge, EqualsWritingTheConcatenatedDocumentsInOneRun) {
  TempDir d;
  for (TokenDType dtype : {TokenDType::u16, TokenDType::i32}) {
    const int32_t vocab = dtype == TokenDType::u16 ? 50257 : 128256;
    const auto docs = random_docs(300, vocab, 7);
    write(d.file("whole"), docs, 0, docs.size(), dtype);
    // Shards of uneven size, one of them with no documents at all.
    const std::vector<size_t> cuts = {0, 1, 120, 120, 299, 300};
    std::vector<std::string> shards;
    for (size_t i = 0; i + 1 < cuts.size(); ++i) {
      shards.push_back(d.file("shard" + std::to_string(i)));
      write(shards.back(), docs, cuts[i], cuts[i + 1], dtype);
    }
    shards[1] += ".bin";  // a trailing .bin/.idx names the same dataset
    shards[2] += ".idx";
    const auto st =
        mds::data::merge_indexed_datasets(mds::data::expand_merge_inputs(shards), d.file("merged"));
    expect_same_files(d.file("merged"), d.file("whole"));
    EXPECT_EQ(st.datasets, 5);
    EXPECT_EQ(st.documents, 300);
    for (const auto& f : fs::directory_iterator(d.path)) fs::remove(f.path());
  }
}

TEST(IndexedMerge, DirectoryInputTakesEveryPairSortedByName) {
  TempDir d;
  const auto docs = random_docs(90, 50257, 11);
  write(d.file("whole"), docs, 0, docs.size());
  fs::create_directory(d.file("shards"));
  // Written out of order; the names sort as the documents go.
  write(d.file("shards/part_2"), docs, 60, 90);
  write(d.file("shards/part_0"), docs, 0, 25);
  write(d.file("shards/part_1"), docs, 25, 60);
  std::ofstream(d.file("shards/README.txt")) << "not a dataset";
  mds::data::merge_indexed_datasets(mds::data::expand_merge_inputs({d.file("shards")}),
                                    d.file("merged"));
  expect_same_files(d.file("merged"), d.file("whole"));
  // A quoted glob names the same shards, whether it matches .bin, .idx or both.
  for (const char* pattern : {"shards/part_*", "shards/part_*.bin"}) {
    const auto prefixes = mds::data::expand_merge_inputs({d.file(pattern)});
    EXPECT_EQ(prefixes, (std::vector<std::string>{d.file("shards/part_0"), d.file("shards/part_1"),
                                                  d.file("shards/part_2")}))
        << pattern;
  }
  EXPECT_NE(merge_error({d.file("shards/none_*")}, d.file("x")).find("matches no"),
            std::string::npos);
}

TEST(IndexedMerge, BadInputsFailBeforeAnyOutputExists) {
  TempDir d;
  const auto docs = random_docs(40, 50257, 3);
  write(d.file("a"), docs, 0, 20);
  write(d.file("b32"), docs, 20, 40, TokenDType::i32);
  const std::string out = d.file("out");
  auto no_output = [&] {
    for (const auto& f : fs::directory_iterator(d.path))
      EXPECT_EQ(f.path().filename().string().rfind("out", 0), std::string::npos)
          << "left behind: " << f.path();
  };
  EXPECT_NE(merge_error({d.file("a"), d.file("b32")}, out).find("dtype"), std::string::npos);
  no_output();
  EXPECT_NE(merge_error({d.file("a"), d.file("missing")}, out).find("missing"), std::string::npos);
  no_output();
  EXPECT_NE(merge_error({d.file("a"), d.file("a")}, d.file("a")).find("also an input"),
            std::string::npos);
  // A directory with half a pair, and one with no pair at all.
  fs::create_directory(d.file("half"));
  write(d.file("half/x"), docs, 0, 5);
  fs::remove(d.file("half/x.idx"));
  EXPECT_NE(merge_error({d.file("half")}, out).find("no matching"), std::string::npos);
  fs::create_directory(d.file("empty"));
  EXPECT_NE(merge_error({d.file("empty")}, out).find("no .bin/.idx pair"), std::string::npos);
  no_output();
  // A truncated .bin in a later shard: refused while checking, before writing.
  write(d.file("c"), docs, 0, 40);
  fs::resize_file(d.file("c.bin"), fs::file_size(d.file("c.bin")) - 2);
  EXPECT_NE(merge_error({d.file("a"), d.file("c")}, out).find("truncated"), std::string::npos);
  no_output();
}
