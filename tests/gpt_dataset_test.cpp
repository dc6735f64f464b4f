// GPTDataset and numpy's RandomState in C++: index maps bit-identical to Megatron + numpy
// (tests/reference/megatron_gpt_indices.py run on the fly), and samples that read the shuffled
// document stream seq_length tokens apart with one shared boundary token.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/gpt_dataset.h"
#include "mds/data/indexed_dataset.h"
#include "mds/data/numpy_random.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Runs the numpy reference with `request` on stdin and returns its JSON answer.
json run_reference(const std::string& mode, const json& request) {
  const fs::path in = fs::temp_directory_path() / ("mds_gpt_ref_" + std::to_string(::getpid()));
  {
    std::FILE* f = std::fopen(in.c_str(), "w");
    const std::string s = request.dump();
    std::fwrite(s.data(), 1, s.size(), f);
    std::fclose(f);
  }
  const std::string cmd =
      mds::strfmt("/usr/bin/python3 {}/tests/reference/megatron_gpt_indices.py {} < {}",
                  MDS_SOURCE_DIR, mode, in.string());
  std::FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  EXPECT_EQ(::pclose(p), 0) << cmd;
  fs::remove(in);
  return json::parse(out);
}

TEST(NumpyRandomState, PermutationMatchesNumpy) {
  json requests = json::array();
  std::vector<std::vector<int64_t>> got;
  for (uint32_t seed : {0u, 1u, 1234u, 4294967295u}) {
    for (size_t n : {size_t(0), size_t(1), size_t(2), size_t(10), size_t(1000), size_t(70000)}) {
      mds::data::NumpyRandomState rng(seed);
      got.push_back(rng.permutation<int64_t>(n));
      requests.push_back({{"seed", seed}, {"n", n}});
    }
  }
  const json want = run_reference("shuffle", requests);
  ASSERT_EQ(want.size(), got.size());
  for (size_t k = 0; k < got.size(); ++k)
    EXPECT_EQ(got[k], want[k].get<std::vector<int64_t>>()) << requests[k].dump();
}

TEST(GPTSplit, RoundsLikeMegatron) {
  json requests = json::array();
  for (const char* split : {"969,30,1", "990/10/0", "1", "98,2", "1,1,1", "0.5,0.25,0.25"})
    for (int64_t size : {1, 2, 3, 10, 101, 1001, 12345})
      requests.push_back({{"split", split}, {"size", size}});
  const json want = run_reference("split", requests);
  ASSERT_EQ(want.size(), requests.size());
  for (size_t r = 0; r < requests.size(); ++r) {
    const auto got = mds::data::split_documents(requests[r]["split"].get<std::string>(),
                                                requests[r]["size"].get<int64_t>());
    const auto w = want[r].get<std::vector<int64_t>>();
    ASSERT_EQ(w.size(), 4u);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_EQ(got[k].first, w[k]) << requests[r].dump();
      EXPECT_EQ(got[k].second, w[k + 1]) << requests[r].dump();
    }
  }
  EXPECT_THROW(mds::data::split_documents("a,b", 10), mds::UserError);
  EXPECT_THROW(mds::data::split_documents("0,0,0", 10), mds::UserError);
}

struct MapsCase {
  const char* name;
  std::vector<int32_t> sizes;
  int64_t begin, end, num_samples;
  int seq_length;
  uint32_t seed;
};

std::vector<int32_t> random_sizes(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<int32_t> s(n);
  for (auto& x : s) x = lo + int32_t(gen() % uint32_t(hi - lo + 1));
  return s;
}

TEST(GPTIndexMaps, MatchMegatronAndNumpy) {
  auto with_zeros = random_sizes(60, 0, 30, 5);
  for (size_t k = 0; k < with_zeros.size(); k += 4) with_zeros[k] = 0;
  const std::vector<MapsCase> cases = {
      {"one epoch", random_sizes(50, 1, 40, 1), 0, 50, 10, 16, 1234},
      {"exactly one epoch", random_sizes(50, 1, 40, 1), 0, 50, 63, 16, 1234},
      {"many epochs", random_sizes(20, 1, 30, 2), 0, 20, 400, 8, 7},
      {"last epoch small (separate)", random_sizes(40, 5, 20, 3), 0, 40, 110, 16, 99},
      {"last epoch large (joint)", random_sizes(40, 5, 20, 3), 0, 40, 140, 16, 99},
      {"tiny docs shorter than seq", random_sizes(30, 1, 3, 4), 0, 30, 25, 64, 42},
      {"zero-size documents", with_zeros, 0, 60, 120, 12, 3},
      {"document subrange", random_sizes(100, 1, 50, 6), 37, 81, 90, 32, 1234},
      {"larger", random_sizes(3000, 1, 400, 8), 0, 3000, 6000, 128, 2024},
  };
  json requests = json::array();
  for (const auto& c : cases)
    requests.push_back({{"sizes", c.sizes},
                        {"begin", c.begin},
                        {"end", c.end},
                        {"num_samples", c.num_samples},
                        {"seq_length", c.seq_length},
                        {"seed", c.seed}});
  const json answers = run_reference("maps", requests);
  ASSERT_EQ(answers.size(), cases.size());
  bool saw_separate = false, saw_joint_multi = false;
  for (size_t k = 0; k < cases.size(); ++k) {
    const auto& c = cases[k];
    const json& want = answers[k];
    const auto m = mds::data::build_gpt_index_maps(c.sizes, c.begin, c.end, c.num_samples,
                                                   c.seq_length, c.seed);
    EXPECT_EQ(m.num_epochs, want["num_epochs"].get<int>()) << c.name;
    EXPECT_EQ(m.separate_last_epoch, want["separate_last_epoch"].get<bool>()) << c.name;
    EXPECT_EQ(m.doc_idx, want["doc_idx"].get<std::vector<int32_t>>()) << c.name;
    EXPECT_EQ(m.sample_idx, want["sample_idx"].get<std::vector<int64_t>>()) << c.name;
    EXPECT_EQ(m.shuffle_idx, want["shuffle_idx"].get<std::vector<int64_t>>()) << c.name;
    EXPECT_GE(m.num_built_samples(), c.num_samples) << c.name;
    saw_separate |= m.separate_last_epoch;
    saw_joint_multi |= (m.num_epochs > 1 && !m.separate_last_epoch);
  }
  EXPECT_TRUE(saw_separate) << "no case exercised separate_last_epoch";
  EXPECT_TRUE(saw_joint_multi) << "no multi-epoch case shuffled the last epoch jointly";
}

TEST(GPTIndexMaps, RejectsUnusableInput) {
  const std::vector<int32_t> sizes = {3, 0, 4};
  EXPECT_THROW(mds::data::build_gpt_index_maps(sizes, 1, 2, 5, 8, 1), mds::UserError);  // 0 tokens
  EXPECT_THROW(mds::data::build_gpt_index_maps(sizes, 0, 4, 5, 8, 1), mds::UserError);  // range
  EXPECT_THROW(mds::data::build_gpt_index_maps(sizes, 0, 3, 5, 0, 1), mds::UserError);  // seq 0
  EXPECT_THROW(mds::data::build_gpt_index_maps(sizes, 0, 3, 5, 8, 1ull << 32), mds::UserError);
}

class GPTDatasetTest : public ::testing::Test {
 protected:
  std::string dir;
  std::vector<std::vector<int32_t>> docs;  // non-empty documents as written
  void SetUp() override {
    dir = (fs::temp_directory_path() / ("mds_gpt_" + std::to_string(::getpid()))).string();
    fs::create_directories(dir);
    std::mt19937 gen(11);
    mds::data::IndexedDatasetWriter w(dir + "/d", mds::data::TokenDType::u16);
    for (int d = 0; d < 40; ++d) {
      std::vector<int32_t> doc(d % 7 == 3 ? 0 : 1 + gen() % 25);
      for (size_t k = 0; k < doc.size(); ++k) doc[k] = int32_t(1000 * (d + 1) + k);
      w.add_document(doc);
      if (!doc.empty()) docs.push_back(doc);
    }
    w.finalize();
  }
  void TearDown() override { fs::remove_all(dir); }
};

// Sample j (before shuffling) is tokens [j*s, j*s + s] of the documents laid end to end in
// doc_idx order: consecutive samples overlap by exactly one token.
TEST_F(GPTDatasetTest, SamplesReadTheShuffledDocumentStream) {
  auto data = std::make_shared<const mds::data::IndexedDataset>(dir + "/d");
  const int s = 16;
  mds::data::GPTDataset ds(data, 0, data->num_sequences(), 150, s, 1234);
  ASSERT_EQ(ds.size(), 150);
  std::vector<int32_t> stream;
  for (int32_t d : ds.index_maps().doc_idx)
    stream.insert(stream.end(), docs[size_t(d)].begin(), docs[size_t(d)].end());
  std::vector<int32_t> out(s + 1);
  for (int64_t i = 0; i < ds.size(); ++i) {
    ds.sample(i, out.data());
    const int64_t j = ds.index_maps().shuffle_idx[size_t(i)];
    ASSERT_LE(size_t(j * s + s + 1), stream.size());
    EXPECT_TRUE(std::equal(out.begin(), out.end(), stream.begin() + j * s)) << "sample " << i;
  }
}

TEST_F(GPTDatasetTest, VocabLimitRefusesLargeTokenIds) {
  auto data = std::make_shared<const mds::data::IndexedDataset>(dir + "/d");
  mds::data::GPTDataset ds(data, 0, data->num_sequences(), 20, 8, 1);
  std::vector<int32_t> out(9);
  ds.set_vocab_limit(50257);
  EXPECT_NO_THROW(ds.sample(0, out.data()));
  EXPECT_LT(data->max_token_id(), 50257);
  ds.set_vocab_limit(1000);  // every token id here is >= 1000
  try {
    ds.sample(0, out.data());
    ADD_FAILURE() << "token ids >= vocab were not refused";
  } catch (const mds::UserError& e) {
    EXPECT_NE(std::string(e.what()).find(dir + "/d"), std::string::npos) << e.what();
  }
}

}  // namespace
