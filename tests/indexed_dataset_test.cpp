// IndexedDatasetWriter/IndexedDataset: byte-identical to Megatron's builder (checked against
// tests/reference/megatron_indexed_writer.py), round trip, every corruption a UserError on open,
// and the files mapped lazily: on first use, once, from any number of threads.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"
#include "proc_maps.h"

namespace fs = std::filesystem;
using mds::data::IndexedDataset;
using mds::data::IndexedDatasetWriter;
using mds::data::TokenDType;

namespace {

std::string make_temp_dir() {
  std::string tmpl = (fs::temp_directory_path() / "mds_idx_XXXXXX").string();
  EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
  return tmpl;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Documents of random ids below vocab, with empty documents mixed in (the first and last too).
std::vector<std::vector<int32_t>> random_docs(int n, int64_t vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<std::vector<int32_t>> docs(static_cast<size_t>(n));
  for (int d = 0; d < n; ++d) {
    if (d == 0 || d == n - 1 || gen() % 5 == 0) continue;  // empty document
    docs[size_t(d)].resize(1 + gen() % 50);
    for (auto& t : docs[size_t(d)]) t = int32_t(gen() % uint32_t(vocab));
  }
  return docs;
}

// Writes docs with mds (EOD appended to non-empty documents, as mds preprocess does).
void write_mds(const std::string& prefix, const std::vector<std::vector<int32_t>>& docs,
               int64_t vocab, int32_t eod) {
  IndexedDatasetWriter w(prefix, mds::data::token_dtype_for_vocab(vocab));
  for (auto doc : docs) {
    if (!doc.empty()) doc.push_back(eod);
    w.add_document(doc);
  }
  w.finalize();
}

struct Fixture : ::testing::Test {
  std::string dir = make_temp_dir();
  ~Fixture() override { fs::remove_all(dir); }
};

using IndexedDatasetTest = Fixture;

class IndexedDatasetBytes : public ::testing::TestWithParam<int64_t> {
 protected:
  std::string dir = make_temp_dir();
  ~IndexedDatasetBytes() override { fs::remove_all(dir); }
};

TEST_P(IndexedDatasetBytes, WriterMatchesMegatronSpecWriter) {
  const int64_t vocab = GetParam();
  const int32_t eod = int32_t(vocab - 1);
  const auto docs = random_docs(200, vocab, uint32_t(vocab));
  {
    std::ofstream ids(dir + "/ids.jsonl");
    for (const auto& d : docs) {
      ids << '[';
      for (size_t k = 0; k < d.size(); ++k) ids << (k ? "," : "") << d[k];
      ids << "]\n";
    }
  }
  const std::string cmd = mds::strfmt(
      "/usr/bin/python3 {}/tests/reference/megatron_indexed_writer.py {}/ids.jsonl {}/spec "
      "--vocab-size {} --eod {}",
      MDS_SOURCE_DIR, dir, dir, vocab, eod);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  write_mds(dir + "/mds", docs, vocab, eod);
  for (const char* ext : {".bin", ".idx"}) {
    const std::string a = read_bytes(dir + "/mds" + ext), b = read_bytes(dir + "/spec" + ext);
    EXPECT_GT(b.size(), 0u);
    EXPECT_TRUE(a == b) << ext << " differs from the Megatron spec writer (" << a.size() << " vs "
                        << b.size() << " bytes)";
  }
}

// GPT-2's vocabulary (uint16 .bin) and a Llama-3-sized one (int32 .bin).
INSTANTIATE_TEST_SUITE_P(Vocab, IndexedDatasetBytes, ::testing::Values(50257, 128256));

TEST(IndexedDatasetDType, ChosenByVocabSizeLikeMegatron) {
  EXPECT_EQ(mds::data::token_dtype_for_vocab(50257), TokenDType::u16);
  EXPECT_EQ(mds::data::token_dtype_for_vocab(65499), TokenDType::u16);
  EXPECT_EQ(mds::data::token_dtype_for_vocab(65500), TokenDType::i32);
  EXPECT_EQ(mds::data::token_dtype_for_vocab(128256), TokenDType::i32);
  EXPECT_EQ(mds::data::dtype_size(TokenDType::u16), 2u);
  EXPECT_EQ(mds::data::dtype_size(TokenDType::i64), 8u);
}

TEST_F(IndexedDatasetTest, RoundTripsTokensAndIndex) {
  const auto docs = random_docs(50, 50257, 7);
  write_mds(dir + "/d", docs, 50257, 50256);
  IndexedDataset ds(dir + "/d");
  EXPECT_EQ(ds.dtype(), TokenDType::u16);
  ASSERT_EQ(ds.num_doc_idx(), int64_t(docs.size()) + 1);
  int64_t seq = 0, tokens = 0, max_id = -1;
  for (size_t d = 0; d < docs.size(); ++d) {
    EXPECT_EQ(ds.doc_idx(int64_t(d)), seq);
    if (docs[d].empty()) continue;  // an empty document repeats the boundary
    std::vector<int32_t> expect = docs[d];
    expect.push_back(50256);
    ASSERT_EQ(ds.size(seq), int32_t(expect.size()));
    EXPECT_EQ(ds.pointer(seq), tokens * 2);
    std::vector<int32_t> got(expect.size());
    ds.read(seq, 0, int64_t(got.size()), got.data());
    EXPECT_EQ(got, expect);
    std::vector<int32_t> tail(2);
    ds.read(seq, int64_t(expect.size()) - 2, 2, tail.data());
    EXPECT_EQ(tail[1], 50256);
    for (int32_t t : expect) max_id = std::max<int64_t>(max_id, t);
    tokens += int64_t(expect.size());
    ++seq;
  }
  EXPECT_EQ(ds.doc_idx(ds.num_doc_idx() - 1), seq);
  EXPECT_EQ(ds.num_sequences(), seq);
  EXPECT_EQ(ds.num_tokens(), tokens);
  EXPECT_EQ(ds.max_token_id(), max_id);
  EXPECT_EQ(int64_t(ds.sizes().size()), seq);
}

TEST_F(IndexedDatasetTest, MultiSequenceDocumentKeepsOneBoundary) {
  {
    IndexedDatasetWriter w(dir + "/m", TokenDType::i32);
    const std::vector<int32_t> toks = {1, 2, 3, 4, 5, 6}, lens = {2, 4};
    w.add_document(toks, lens);
    w.add_document(std::vector<int32_t>{7});
    w.finalize();
  }
  IndexedDataset ds(dir + "/m");
  ASSERT_EQ(ds.num_sequences(), 3);
  EXPECT_EQ(ds.size(0), 2);
  EXPECT_EQ(ds.size(1), 4);
  EXPECT_EQ(ds.pointer(1), 8);
  EXPECT_EQ(ds.pointer(2), 24);
  ASSERT_EQ(ds.num_doc_idx(), 3);
  EXPECT_EQ(ds.doc_idx(1), 2);
  EXPECT_EQ(ds.doc_idx(2), 3);
}

TEST_F(IndexedDatasetTest, LeavesNoTempFilesAndNothingWithoutFinalize) {
  {
    IndexedDatasetWriter w(dir + "/gone", TokenDType::u16);
    w.add_document(std::vector<int32_t>{1});
  }
  write_mds(dir + "/kept", {{1, 2}}, 50257, 0);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"kept.bin", "kept.idx"}));
}

TEST_F(IndexedDatasetTest, TokenTooLargeForDTypeIsUserError) {
  IndexedDatasetWriter w(dir + "/big", TokenDType::u16);
  EXPECT_THROW(w.add_document(std::vector<int32_t>{70000}), mds::UserError);
}

// Each corruption of a good pair must be refused on open with a one-line UserError that names
// the file and tells how to fix it.
TEST_F(IndexedDatasetTest, CorruptFilesAreUserErrors) {
  write_mds(dir + "/good", random_docs(20, 50257, 3), 50257, 50256);
  const std::string idx = read_bytes(dir + "/good.idx"), bin = read_bytes(dir + "/good.bin");
  struct Case {
    const char* name;
    std::function<void(std::string& idx, std::string& bin)> corrupt;
    const char* file;  // which file the message must name
    const char* says;
  };
  const std::vector<Case> cases = {
      {"flipped magic", [](auto& i, auto&) { i[0] = 'X'; }, ".idx", "magic"},
      {"version 2", [](auto& i, auto&) { i[9] = 2; }, ".idx", "version"},
      {"float dtype", [](auto& i, auto&) { i[17] = 7; }, ".idx", "dtype"},
      {"unknown dtype", [](auto& i, auto&) { i[17] = 99; }, ".idx", "dtype"},
      {"header cut", [](auto& i, auto&) { i.resize(20); }, ".idx", "truncated"},
      {"doc_idx cut", [](auto& i, auto&) { i.resize(i.size() - 4); }, ".idx", "truncated"},
      {"sizes cut", [](auto& i, auto&) { i.resize(40); }, ".idx", "truncated"},
      {"huge count", [](auto& i, auto&) { i[25] = char(0x7f); }, ".idx", "truncated"},
      {"bin cut", [](auto&, auto& b) { b.resize(b.size() - 2); }, ".bin", "truncated"},
      {"bin empty", [](auto&, auto& b) { b.clear(); }, ".bin", "truncated"},
  };
  for (const auto& c : cases) {
    std::string i = idx, b = bin;
    c.corrupt(i, b);
    write_bytes(dir + "/bad.idx", i);
    write_bytes(dir + "/bad.bin", b);
    try {
      IndexedDataset ds(dir + "/bad");
      ADD_FAILURE() << c.name << ": opened without error";
    } catch (const mds::UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(dir + "/bad" + c.file), std::string::npos) << c.name << ": " << msg;
      EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
      EXPECT_NE(msg.find("mds preprocess"), std::string::npos) << c.name << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << c.name << ": " << msg;
    }
  }
}

TEST_F(IndexedDatasetTest, MissingFilesAreUserErrors) {
  write_mds(dir + "/half", {{1, 2, 3}}, 50257, 0);
  fs::remove(dir + "/half.bin");
  EXPECT_THROW({ IndexedDataset ds(dir + "/nothing"); }, mds::UserError);
  try {
    IndexedDataset ds(dir + "/half");
    ADD_FAILURE() << "opened without a .bin";
  } catch (const mds::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("half.bin"), std::string::npos) << e.what();
  }
}

// Opening validates without mapping: the .idx is mapped on the first index access, the .bin on
// the first token read, each once.
TEST_F(IndexedDatasetTest, OpensWithoutMappingAndMapsEachFileOnFirstUse) {
  const auto docs = random_docs(30, 50257, 11);
  write_mds(dir + "/d", docs, 50257, 50256);
  const std::string idx = dir + "/d.idx", bin = dir + "/d.bin";
  IndexedDataset ds(dir + "/d");
  int64_t tokens = 0;
  for (const auto& d : docs) tokens += d.empty() ? 0 : int64_t(d.size()) + 1;
  EXPECT_EQ(ds.num_tokens(), tokens);
  const std::vector<int32_t> sizes = ds.sizes();  // what building the index maps reads
  EXPECT_EQ(mappings_of(idx), 0);
  EXPECT_EQ(mappings_of(bin), 0);
  EXPECT_EQ(ds.size(0), sizes[0]);
  EXPECT_EQ(mappings_of(idx), 1);
  EXPECT_EQ(mappings_of(bin), 0);
  std::vector<int32_t> got(size_t(ds.size(0)));
  ds.read(0, 0, ds.size(0), got.data());
  EXPECT_EQ(got.back(), 50256);
  for (int64_t i = 0; i < ds.num_sequences(); ++i) ds.read(i, 0, 1, got.data());
  EXPECT_EQ(mappings_of(idx), 1);
  EXPECT_EQ(mappings_of(bin), 1);
}

TEST_F(IndexedDatasetTest, ConcurrentFirstReadsMapOnceAndAgree) {
  const auto docs = random_docs(200, 50257, 12);
  write_mds(dir + "/c", docs, 50257, 50256);
  std::vector<std::vector<int32_t>> want;
  for (auto d : docs)
    if (!d.empty()) {
      d.push_back(50256);
      want.push_back(d);
    }
  for (int round = 0; round < 5; ++round) {
    const IndexedDataset ds(dir + "/c");
    std::vector<std::vector<std::vector<int32_t>>> got(8);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < got.size(); ++t)
      threads.emplace_back([&, t] {
        for (int64_t i = 0; i < ds.num_sequences(); ++i) {
          std::vector<int32_t> seq(size_t(ds.size(i)));
          ds.read(i, 0, int64_t(seq.size()), seq.data());
          got[t].push_back(std::move(seq));
        }
      });
    for (auto& th : threads) th.join();
    for (const auto& g : got) ASSERT_EQ(g, want);
    EXPECT_EQ(mappings_of(dir + "/c.idx"), 1);
    EXPECT_EQ(mappings_of(dir + "/c.bin"), 1);
  }
  EXPECT_EQ(mappings_of(dir + "/c.bin"), 0);  // unmapped with the last dataset
}

TEST_F(IndexedDatasetTest, FileRewrittenAfterOpeningIsAUserErrorNotWrongTokens) {
  auto expect_changed = [](const std::string& file, const std::function<void()>& f) {
    try {
      f();
      ADD_FAILURE() << "read " << file << " after it was rewritten";
    } catch (const mds::UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(file), std::string::npos) << msg;
      EXPECT_NE(msg.find("changed since it was opened"), std::string::npos) << msg;
    }
  };
  int32_t one = 0;
  // Re-preprocessed into a different size: the .idx is refused when first mapped.
  write_mds(dir + "/r", random_docs(20, 50257, 13), 50257, 50256);
  IndexedDataset ds(dir + "/r");
  write_mds(dir + "/r", random_docs(30, 50257, 14), 50257, 50256);
  expect_changed(dir + "/r.idx", [&] { ds.read(0, 0, 1, &one); });
  expect_changed(dir + "/r.idx", [&] { ds.sizes(); });
  // The same size, other bytes, a newer modification time: the .bin is refused.
  write_mds(dir + "/s", random_docs(20, 50257, 15), 50257, 50256);
  IndexedDataset same(dir + "/s");
  EXPECT_GT(same.size(1), 0);  // the .idx is mapped, the .bin not yet
  const std::string bin = dir + "/s.bin";
  const auto mtime = fs::last_write_time(bin);
  write_bytes(bin, std::string(fs::file_size(bin), '\x01'));
  fs::last_write_time(bin, mtime + std::chrono::seconds(1));
  expect_changed(bin, [&] { same.read(1, 0, 1, &one); });
}

}  // namespace
