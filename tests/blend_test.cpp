// Blending, data-file lists and the index-map cache: Megatron's build_blending_indices on
// hand-computed cases and its prefix property, the corpus shuffle against numpy, per-shard
// sample counts (ceil(N w 1.005)), list parsing errors naming FILE:LINE, and a second start
// that loads every index map instead of building it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/blended_dataset.h"
#include "mds/data/data_file_list.h"
#include "mds/data/gpt_dataset.h"
#include "mds/data/index_cache.h"
#include "mds/data/indexed_dataset.h"
#include "mds/train/datasets.h"
#include "proc_maps.h"

namespace fs = std::filesystem;
using namespace mds;
using data::BlendingIndices;

namespace {

// A scratch directory removed when the test ends.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           strfmt("mds_blend_test_{}_{}", int64_t(::getpid()),
                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// A shard of `docs` documents of 10..40 tokens; ids encode the shard so samples can be traced.
void write_shard(const std::string& prefix, int docs, int shard_id) {
  data::IndexedDatasetWriter w(prefix, data::TokenDType::u16);
  std::mt19937 rng{uint32_t(shard_id)};
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> t(10 + rng() % 31, shard_id * 1000 + d % 1000);
    w.add_document(t);
  }
  w.finalize();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

// The UserError message of f(), or "" when it does not throw one.
template <typename F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// A dataset whose sample i is [tag, i, i, ...]: shows which part and index a blend reads.
struct Tagged : data::SampleDataset {
  int64_t n;
  int32_t tag;
  Tagged(int64_t n_, int32_t tag_) : n(n_), tag(tag_) {}
  int64_t size() const override { return n; }
  int seq_length() const override { return 2; }
  void sample(int64_t i, int32_t* out) const override {
    out[0] = tag;
    out[1] = out[2] = int32_t(i);
  }
};

}  // namespace

TEST(BlendingIndices, MatchesHandComputedCases) {
  // At step t pick argmax_d w_d * max(t, 1) - count_d; ties to the lowest index.
  const double half[] = {0.5, 0.5};
  BlendingIndices b = data::build_blending_indices(half, 4);
  EXPECT_EQ(b.dataset, (std::vector<int32_t>{0, 1, 0, 1}));
  EXPECT_EQ(b.sample, (std::vector<int64_t>{0, 0, 1, 1}));
  const double three[] = {2, 3, 5};  // normalised to 0.2, 0.3, 0.5
  b = data::build_blending_indices(three, 5);
  EXPECT_EQ(b.dataset, (std::vector<int32_t>{2, 1, 0, 2, 1}));
  EXPECT_EQ(b.sample, (std::vector<int64_t>{0, 0, 0, 1, 1}));
  // A zero weight still wins ties at zero error (t = 1 here), exactly as in helpers.cpp; this
  // is why build_datasets leaves zero-weight shards out of the blend altogether.
  const double zero_first[] = {0, 1};
  b = data::build_blending_indices(zero_first, 3);
  EXPECT_EQ(b.dataset, (std::vector<int32_t>{1, 0, 1}));
  const double none[] = {0, 0};
  EXPECT_NE(user_error([&] { data::build_blending_indices(none, 3); }), "");
}

TEST(BlendingIndices, EveryPrefixWithinOneSampleOfTheWeights) {
  // Megatron's greedy aims the n-th draw at w * max(n-1, 1): against that target every count
  // stays within one sample, and it never runs more than one sample ahead of w * n.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t k = 1 + rng() % 10;
    std::vector<double> w(k);
    double sum = 0;
    for (double& x : w) sum += (x = (rng() % 5 == 0) ? 0.0 : double(1 + rng() % 1000));
    if (sum == 0) continue;
    const int64_t size = 300;
    const BlendingIndices b = data::build_blending_indices(w, size);
    std::vector<int64_t> count(k, 0);
    for (int64_t n = 1; n <= size; ++n) {
      const size_t d = size_t(b.dataset[size_t(n - 1)]);
      ASSERT_EQ(b.sample[size_t(n - 1)], count[d]);
      ++count[d];
      for (size_t j = 0; j < k; ++j) {
        const double share = w[j] / sum;
        ASSERT_LE(std::abs(double(count[j]) - share * double(std::max<int64_t>(n - 1, 1))),
                  1.0 + 1e-9)
            << "trial " << trial << " prefix " << n << " corpus " << j;
        ASSERT_LE(double(count[j]), share * double(n) + 1.0 + 1e-9);
      }
    }
  }
}

TEST(CorpusDataset, ConcatenatesShardsInAnOrderShuffledLikeNumpy) {
  std::vector<std::unique_ptr<data::SampleDataset>> parts;
  parts.push_back(std::make_unique<Tagged>(3, 10));
  parts.push_back(std::make_unique<Tagged>(4, 20));
  data::CorpusDataset corpus(std::move(parts), 1234);
  ASSERT_EQ(corpus.size(), 7);
  // np.random.RandomState(1234).shuffle(np.arange(7)) -> [2, 1, 6, 0, 4, 5, 3]
  const int64_t order[] = {2, 1, 6, 0, 4, 5, 3};
  int32_t out[3];
  for (int64_t i = 0; i < 7; ++i) {
    corpus.sample(i, out);
    const int64_t k = order[i];
    EXPECT_EQ(out[0], k < 3 ? 10 : 20) << i;
    EXPECT_EQ(out[1], k < 3 ? k : k - 3) << i;
  }
}

TEST(BlendedDataset, ReadsEachPartInItsOwnOrder) {
  std::vector<std::unique_ptr<data::SampleDataset>> parts;
  parts.push_back(std::make_unique<Tagged>(2, 1));
  parts.push_back(std::make_unique<Tagged>(2, 2));
  data::BlendedDataset blend(std::move(parts), {2, 2}, 4);
  int32_t out[3];
  const int32_t tags[] = {1, 2, 1, 2}, idx[] = {0, 0, 1, 1};
  for (int64_t i = 0; i < 4; ++i) {
    blend.sample(i, out);
    EXPECT_EQ(out[0], tags[i]);
    EXPECT_EQ(out[1], idx[i]);
  }
}

TEST(DataFileList, ParsesWeightsPrefixesAndCorpora) {
  TempDir t;
  write_shard(t / "a", 5, 1);
  write_shard(t / "b", 5, 2);
  const std::string list = t / "list.txt";
  write_file(list, strfmt("# a comment\n\n0.25 {}.bin web   # trailing comment\n  3e-1 {} books\n",
                          t / "a", t / "b"));
  const auto s = data::read_data_file_list(list);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].weight, 0.25);
  EXPECT_EQ(s[0].prefix, t / "a");  // ".bin" stripped
  EXPECT_EQ(s[0].corpus, "web");
  EXPECT_EQ(s[1].weight, 0.3);
  EXPECT_EQ(s[1].corpus, "books");
}

TEST(DataFileList, ErrorsNameFileAndLine) {
  TempDir t;
  write_shard(t / "a", 5, 1);
  const std::string list = t / "list.txt", ok = strfmt("1 {} c\n", t / "a");
  auto error_for = [&](const std::string& bad_line) {
    write_file(list, ok + "# comment\n" + bad_line + "\n");
    return user_error([&] { data::read_data_file_list(list); });
  };
  const std::string at3 = list + ":3:";
  std::string e = error_for(strfmt("1 {}", t / "a"));
  EXPECT_NE(e.find(at3), std::string::npos) << e;
  EXPECT_NE(e.find("expected 3 fields"), std::string::npos) << e;
  e = error_for(strfmt("1 {} c extra", t / "a"));
  EXPECT_NE(e.find(at3), std::string::npos) << e;
  e = error_for(strfmt("heavy {} c", t / "a"));
  EXPECT_NE(e.find(at3), std::string::npos) << e;
  EXPECT_NE(e.find("'heavy' is not a non-negative number"), std::string::npos) << e;
  e = error_for(strfmt("-0.5 {} c", t / "a"));
  EXPECT_NE(e.find("'-0.5'"), std::string::npos) << e;
  e = error_for(strfmt("1 {} c", t / "missing"));
  EXPECT_NE(e.find(at3), std::string::npos) << e;
  EXPECT_NE(e.find(t / "missing"), std::string::npos) << e;
  write_file(list, "# nothing\n\n");
  EXPECT_NE(user_error([&] { data::read_data_file_list(list); }).find("lists no shards"),
            std::string::npos);
  EXPECT_NE(user_error([&] { data::read_data_file_list(t / "nope.txt"); }).find("cannot open"),
            std::string::npos);
}

TEST(DataPath, SinglePrefixOrWeightPrefixPairs) {
  TempDir t;
  write_shard(t / "a", 5, 1);
  write_shard(t / "b", 5, 2);
  auto s = data::parse_data_path({t / "a"});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].weight, 1.0);
  s = data::parse_data_path({"0.7", t / "a", "0.3", t / "b.bin"});
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[1].prefix, t / "b");
  EXPECT_EQ(s[1].weight, 0.3);
  EXPECT_NE(user_error([&] { data::parse_data_path({"0.7", t / "a", "0.3"}); }), "");
  EXPECT_NE(user_error([&] {
              data::parse_data_path({t / "a", t / "b"});
            }).find("weight"),
            std::string::npos);
  EXPECT_NE(user_error([&] { data::parse_data_path({t / "zzz"}); }).find(t / "zzz"),
            std::string::npos);
}

namespace {

train::DataOptions blend_options(const TempDir& t, int64_t n_train) {
  train::DataOptions o;
  o.sources = {{1.0, t / "a", "web"}, {3.0, t / "b", "books"}, {1.0, t / "c", "books"}};
  o.blend = true;
  o.split = "90,10,0";
  o.seq_length = 16;
  o.seed = 1234;
  o.num_samples = {n_train, 8, 0};
  o.cache_path = t / "cache";
  return o;
}

std::vector<int32_t> all_samples(const data::SampleDataset& d) {
  std::vector<int32_t> out(size_t(d.size() * (d.seq_length() + 1)));
  for (int64_t i = 0; i < d.size(); ++i) d.sample(i, out.data() + size_t(i * (d.seq_length() + 1)));
  return out;
}

}  // namespace

TEST(BuildDatasets, MegatronPerShardCountsAndCorpusTable) {
  TempDir t;
  write_shard(t / "a", 40, 1);
  write_shard(t / "b", 60, 2);
  write_shard(t / "c", 20, 3);
  const train::Datasets d = train::build_datasets(blend_options(t, 100));
  // Weights 0.2, 0.6, 0.2: ceil(100 w 1.005) = 21, 61, 21; valid ceil(8 w 1.005) = 2, 5, 2.
  const auto& c = d.summary.corpora;
  ASSERT_EQ(c.size(), 2u);  // sorted by name: books, web
  EXPECT_EQ(c[0].name, "books");
  EXPECT_EQ(c[0].shards, 2);
  EXPECT_EQ(c[0].documents, 80);
  EXPECT_NEAR(c[0].weight, 0.8, 1e-12);
  EXPECT_EQ(c[0].samples, (std::array<int64_t, 3>{61 + 21, 5 + 2, 0}));
  EXPECT_EQ(c[1].samples, (std::array<int64_t, 3>{21, 2, 0}));
  EXPECT_EQ(d.train->size(), 103);
  EXPECT_EQ(d.valid->size(), 9);
  EXPECT_EQ(d.test, nullptr);
  // Every train sample comes from the train documents (the first 90%) of some shard.
  int32_t out[17];
  int64_t from_web = 0;
  for (int64_t i = 0; i < d.train->size(); ++i) {
    d.train->sample(i, out);
    const int shard = out[0] / 1000, doc = out[0] % 1000;
    const int docs[] = {0, 40, 60, 20};
    ASSERT_TRUE(shard >= 1 && shard <= 3) << out[0];
    EXPECT_LT(doc, int(std::lround(0.9 * docs[shard]))) << "shard " << shard;
    from_web += shard == 1;
  }
  EXPECT_EQ(from_web, 21);
  const std::string table = d.summary.table();
  EXPECT_NE(table.find("books"), std::string::npos) << table;
  EXPECT_NE(table.find("total"), std::string::npos) << table;
  EXPECT_NE(d.summary.json().find("\"books\""), std::string::npos);
}

TEST(BuildDatasets, StartupMapsNoShardAndASampleMapsOnlyItsOwn) {
  // Memory must not grow with the shard count beyond the index maps: neither a cold start
  // (building the maps) nor a cached one maps a shard; a sample maps the one shard it reads.
  TempDir t;
  const std::vector<std::string> shards = {t / "a", t / "b", t / "c"};
  for (size_t i = 0; i < shards.size(); ++i) write_shard(shards[i], 40, int(i) + 1);
  auto mapped = [&] {
    std::vector<int> n;
    for (const auto& s : shards) n.push_back(mappings_of(s + ".idx") + mappings_of(s + ".bin"));
    return n;
  };
  for (int start = 0; start < 2; ++start) {
    const train::Datasets d = train::build_datasets(blend_options(t, 100));
    EXPECT_EQ(d.summary.index_built, start == 0 ? 6 : 0);
    EXPECT_EQ(mapped(), (std::vector<int>{0, 0, 0})) << "start " << start;
    int32_t out[17];
    d.train->sample(0, out);
    const int shard = out[0] / 1000;  // write_shard's ids encode the shard
    std::vector<int> want = {0, 0, 0};
    want[size_t(shard - 1)] = 2;  // its .idx and .bin
    EXPECT_EQ(mapped(), want) << "start " << start;
  }
}

TEST(IndexCache, SecondStartLoadsEverythingAndBuildsNothing) {
  TempDir t;
  write_shard(t / "a", 40, 1);
  write_shard(t / "b", 60, 2);
  write_shard(t / "c", 20, 3);
  const train::Datasets first = train::build_datasets(blend_options(t, 100));
  EXPECT_EQ(first.summary.index_built, 6);  // 3 shards x (train, valid)
  EXPECT_EQ(first.summary.index_loaded, 0);
  std::vector<fs::file_time_type> mtimes;
  for (const auto& e : fs::directory_iterator(t / "cache")) mtimes.push_back(e.last_write_time());
  ASSERT_EQ(mtimes.size(), 6u);  // no temporary files left behind

  const train::Datasets second = train::build_datasets(blend_options(t, 100));
  EXPECT_EQ(second.summary.index_built, 0);
  EXPECT_EQ(second.summary.index_loaded, 6);
  EXPECT_NE(second.summary.table().find("loaded cached index 6"), std::string::npos);
  EXPECT_EQ(all_samples(*first.train), all_samples(*second.train));
  EXPECT_EQ(all_samples(*first.valid), all_samples(*second.valid));
  size_t k = 0;
  for (const auto& e : fs::directory_iterator(t / "cache"))
    EXPECT_EQ(e.last_write_time(), mtimes[k++]);  // nothing rewritten

  // Another sample count is other maps: the train ones are rebuilt, valid reused.
  const train::Datasets third = train::build_datasets(blend_options(t, 200));
  EXPECT_EQ(third.summary.index_built, 3);
  EXPECT_EQ(third.summary.index_loaded, 3);
}

TEST(IndexCache, BesideTheDataByDefaultAndCorruptEntriesAreRebuilt) {
  TempDir t;
  write_shard(t / "a", 30, 1);
  const std::vector<int32_t> sizes = data::IndexedDataset(t / "a").sizes();
  const data::IndexMapKey key{t / "a", 0, 30, 50, 8, 1};
  int builds = 0;
  auto build = [&] {
    ++builds;
    return data::build_gpt_index_maps(sizes, 0, 30, 50, 8, 1);
  };
  data::IndexCache cache("");
  const data::GPTIndexMaps built = cache.get(key, build);
  EXPECT_EQ(cache.last_dir(), t / "index-cache");
  const data::GPTIndexMaps loaded = data::IndexCache("").get(key, build);
  EXPECT_EQ(builds, 1);
  EXPECT_EQ(loaded.doc_idx, built.doc_idx);
  EXPECT_EQ(loaded.sample_idx, built.sample_idx);
  EXPECT_EQ(loaded.shuffle_idx, built.shuffle_idx);
  EXPECT_EQ(loaded.num_epochs, built.num_epochs);
  // Truncate the entry: it is not trusted, but rebuilt and rewritten.
  for (const auto& e : fs::directory_iterator(t / "index-cache"))
    fs::resize_file(e.path(), fs::file_size(e.path()) - 4);
  data::IndexCache("").get(key, build);
  EXPECT_EQ(builds, 2);
  data::IndexCache("").get(key, build);
  EXPECT_EQ(builds, 2);
}

TEST(IndexCache, FollowerWaitsForTheBuildersEntry) {
  TempDir t;
  write_shard(t / "a", 30, 1);
  const std::vector<int32_t> sizes = data::IndexedDataset(t / "a").sizes();
  const data::IndexMapKey key{t / "a", 0, 30, 50, 8, 1};
  auto build = [&] { return data::build_gpt_index_maps(sizes, 0, 30, 50, 8, 1); };
  data::IndexCache follower(t / "cache", data::IndexCache::Role::follower, 0.2);
  const std::string e = user_error([&] { follower.get(key, build); });
  EXPECT_NE(e.find("waited"), std::string::npos) << e;
  data::IndexCache(t / "cache").get(key, build);  // the builder writes it
  const data::GPTIndexMaps m = follower.get(key, build);
  EXPECT_EQ(follower.num_built(), 0);
  EXPECT_EQ(follower.num_loaded(), 1);
  EXPECT_EQ(m.shuffle_idx, build().shuffle_idx);
}

TEST(BuildDatasets, OnePrefixIsExactlyMegatronsGPTDataset) {
  // No blend: exactly N samples, no 1.005 oversampling, no corpus shuffle, maps from the cache
  // identical to building them directly.
  TempDir t;
  write_shard(t / "a", 50, 1);
  train::DataOptions o;
  o.sources = data::parse_data_path({t / "a"});
  o.split = "80,20,0";
  o.seq_length = 16;
  o.seed = 99;
  o.num_samples = {30, 6, 0};
  for (int start = 0; start < 2; ++start) {
    const train::Datasets d = train::build_datasets(o);
    EXPECT_EQ(d.summary.index_built, start == 0 ? 2 : 0);
    auto shard = std::make_shared<const data::IndexedDataset>(t / "a");
    const data::GPTDataset train(shard, 0, 40, 30, 16, 99), valid(shard, 40, 50, 6, 16, 99);
    EXPECT_EQ(all_samples(*d.train), all_samples(train));
    EXPECT_EQ(all_samples(*d.valid), all_samples(valid));
    EXPECT_EQ(d.summary.corpora.at(0).samples, (std::array<int64_t, 3>{30, 6, 0}));
  }
}

TEST(BuildDatasets, BlendedStreamMatchesMegatronDeepSpeedReference) {
  // tests/reference/megatron_blend.py ports the argonne-lcf code (per-shard counts, corpus
  // concat + shuffle, greedy blend) and says which shard and shard sample each position takes;
  // the blend must serve exactly that shard's GPTDataset sample there.
  TempDir t;
  const std::vector<std::string> corpora = {"web", "books", "web", "code", "books"};
  const std::vector<double> weights = {0.5, 1.0, 0.25, 0.7, 0.3};
  train::DataOptions o;
  for (size_t i = 0; i < corpora.size(); ++i) {
    write_shard(t / strfmt("s{}", i), 20 + 7 * int(i), int(i) + 1);
    o.sources.push_back({weights[i], t / strfmt("s{}", i), corpora[i]});
  }
  o.blend = true;
  o.split = "1";
  o.seq_length = 8;
  o.seed = 4321;
  o.num_samples = {150, 0, 0};
  const train::Datasets d = train::build_datasets(o);

  const std::string request = t / "request.json";
  write_file(request,
             nlohmann::json(
                 {{"weights", weights}, {"corpora", corpora}, {"num_samples", 150}, {"seed", 4321}})
                 .dump());
  const std::string cmd =
      strfmt("/usr/bin/python3 {}/tests/reference/megatron_blend.py < {}", MDS_SOURCE_DIR, request);
  std::FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[1 << 14];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << cmd;
  const auto ref = nlohmann::json::parse(out);

  std::vector<std::unique_ptr<data::GPTDataset>> shards;
  for (size_t i = 0; i < corpora.size(); ++i) {
    const int64_t n = ref["per_shard"][i].get<int64_t>();
    auto shard = std::make_shared<const data::IndexedDataset>(t / strfmt("s{}", i));
    const int64_t docs = shard->num_sequences();
    shards.push_back(std::make_unique<data::GPTDataset>(shard, 0, docs, n, 8, 4321));
  }
  const auto& order = ref["order"];
  ASSERT_EQ(int64_t(order.size()), d.train->size());
  std::vector<int32_t> got(9), want(9);
  for (size_t k = 0; k < order.size(); ++k) {
    d.train->sample(int64_t(k), got.data());
    shards[order[k][0].get<size_t>()]->sample(order[k][1].get<int64_t>(), want.data());
    ASSERT_EQ(got, want) << "blend position " << k;
  }
}
