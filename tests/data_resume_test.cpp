// Megatron's pretraining sampler and resuming the data stream. The sampler against a port of
// MegatronPretrainingSampler's loop; each step's global batch read exactly once over the DP
// ranks; and on Brown (GPT-2 tokenized, one shard and a data-file list of six shards in three
// corpora, D = 1 and 2): the stream after resuming at consumed_samples = N, from datasets
// rebuilt as a restarted job builds them, equals the uninterrupted stream from N, and reads no
// sample before N, neither from the dataset nor from any shard under a blend.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/blended_dataset.h"
#include "mds/data/data_file_list.h"
#include "mds/data/gpt2_bpe.h"
#include "mds/data/gpt_dataset.h"
#include "mds/data/indexed_dataset.h"
#include "mds/train/datasets.h"
#include "mds/train/micro_batch.h"
#include "mds/train/sampler.h"
#include "tokenizer_test_util.h"

namespace fs = std::filesystem;
using namespace mds;
using train::megatron_sample_offset;

namespace {

// MegatronPretrainingSampler.__iter__ (megatron/data/data_samplers.py), line by line: the
// micro-batches rank dp_rank gets when the sampler starts at consumed, in order.
std::vector<std::vector<int64_t>> megatron_sampler(int64_t total, int64_t consumed, int64_t micro,
                                                   int64_t dp_rank, int64_t dp_size) {
  std::vector<std::vector<int64_t>> out;
  std::vector<int64_t> batch;
  for (int64_t idx = consumed; idx < total; ++idx) {
    batch.push_back(idx);
    if (int64_t(batch.size()) == micro * dp_size) {
      const int64_t start = dp_rank * micro, end = start + micro;
      out.emplace_back(batch.begin() + start, batch.begin() + end);
      batch.clear();
    }
  }
  return out;
}

// [first, first + n)
std::vector<int64_t> range(int64_t first, int64_t n) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

}  // namespace

TEST(MegatronSampler, HandComputedOffsets) {
  // micro 2, D 2: rank 0 takes samples 0-1 and 4-5 of the step, rank 1 takes 2-3 and 6-7.
  EXPECT_EQ(megatron_sample_offset(0, 2, 2, 0), 0);
  EXPECT_EQ(megatron_sample_offset(0, 2, 2, 1), 2);
  EXPECT_EQ(megatron_sample_offset(1, 2, 2, 0), 4);
  EXPECT_EQ(megatron_sample_offset(1, 2, 2, 1), 6);
  EXPECT_EQ(megatron_sample_offset(3, 2, 1, 0), 6);  // D 1: consecutive micro-batches
  EXPECT_EQ(megatron_sample_offset(2, 3, 4, 3), 33);
  EXPECT_THROW(megatron_sample_offset(0, 2, 2, 2), InternalError);
}

TEST(MegatronSampler, MatchesMegatronPretrainingSampler) {
  for (int64_t micro : {1, 2, 3})
    for (int64_t dp : {1, 2, 4})
      for (int64_t grad_accum : {1, 3}) {
        const int64_t gbs = micro * grad_accum * dp, steps = 5;
        for (int64_t resumed_step : {0, 2}) {
          const int64_t consumed = resumed_step * gbs, total = steps * gbs;
          for (int64_t r = 0; r < dp; ++r) {
            const auto want = megatron_sampler(total, consumed, micro, r, dp);
            ASSERT_EQ(int64_t(want.size()), (steps - resumed_step) * grad_accum);
            for (int64_t t = resumed_step; t < steps; ++t)
              for (int64_t k = 0; k < grad_accum; ++k) {
                const auto& mb = want[size_t((t - resumed_step) * grad_accum + k)];
                const int64_t first = t * gbs + megatron_sample_offset(k, micro, dp, r);
                ASSERT_EQ(range(first, micro), mb)
                    << "micro " << micro << " D " << dp << " accum " << grad_accum << " rank " << r
                    << " step " << t << " k " << k;
              }
          }
        }
      }
}

TEST(MegatronSampler, EachStepReadsItsGlobalBatchOnceOverTheRanks) {
  for (int64_t micro : {1, 4})
    for (int64_t dp : {1, 2, 8})
      for (int64_t grad_accum : {1, 2, 5}) {
        const int64_t gbs = micro * grad_accum * dp;
        std::vector<int64_t> seen;
        for (int64_t r = 0; r < dp; ++r)
          for (int64_t k = 0; k < grad_accum; ++k)
            for (int64_t j = 0; j < micro; ++j)
              seen.push_back(megatron_sample_offset(k, micro, dp, r) + j);
        std::sort(seen.begin(), seen.end());
        EXPECT_EQ(seen, range(0, gbs))
            << "micro " << micro << " D " << dp << " accum " << grad_accum;
      }
}

namespace {

// Brown's first documents, GPT-2 tokenized with EOD appended (as mds preprocess --append-eod),
// written once per test program: `all` (every document) and six shards of 8 documents in three
// corpora listed in a Megatron-DeepSpeed data-file list.
struct BrownShards {
  fs::path dir;
  std::string all, list;
  std::vector<std::string> shards, corpora;
  std::vector<double> weights;
};

const BrownShards& brown() {
  static const BrownShards b = [] {
    BrownShards s;
    s.dir = fs::temp_directory_path() / strfmt("mds_resume_brown_{}", int64_t(::getpid()));
    fs::remove_all(s.dir);
    fs::create_directories(s.dir);
    tok_test::temp_dirs->dirs.push_back(s.dir);
    const data::GPT2BPETokenizer tok(tok_test::data_dir() + "/gpt2-vocab.json",
                                     tok_test::data_dir() + "/gpt2-merges.txt");
    const std::vector<std::string> texts = tok_test::brown_texts();
    std::vector<std::vector<int32_t>> docs;
    for (size_t d = 0; d < 48 && d < texts.size(); ++d) {
      docs.push_back(tok.encode(texts[d]));
      docs.back().push_back(tok.eod());
    }
    auto write = [&](const std::string& prefix, size_t begin, size_t end) {
      data::IndexedDatasetWriter w(prefix, data::token_dtype_for_vocab(tok.vocab_size()));
      for (size_t d = begin; d < end; ++d) w.add_document(docs[d]);
      w.finalize();
    };
    s.all = (s.dir / "brown_all_text_document").string();
    write(s.all, 0, docs.size());
    s.list = (s.dir / "data_file_list.txt").string();
    std::ofstream list(s.list);
    list << "# weight prefix corpus\n";
    const char* corpus[] = {"news", "news", "fiction", "fiction", "science", "science"};
    const double weight[] = {0.3, 0.2, 0.25, 0.05, 0.1, 0.1};
    for (size_t i = 0; i < 6; ++i) {
      s.shards.push_back((s.dir / strfmt("brown_{}_text_document", i)).string());
      s.corpora.push_back(corpus[i]);
      s.weights.push_back(weight[i]);
      write(s.shards.back(), 8 * i, 8 * i + 8);
      list << weight[i] << " " << s.shards.back() << " " << corpus[i] << "\n";
    }
    return s;
  }();
  return b;
}

std::string missing_brown() {
  return tok_test::missing_files({"brown.jsonl", "gpt2-vocab.json", "gpt2-merges.txt"});
}

// A dataset that records which samples are read from the one it wraps.
struct CountingDataset : data::SampleDataset {
  const data::SampleDataset& inner;
  mutable std::vector<int64_t> reads;
  explicit CountingDataset(const data::SampleDataset& d) : inner(d) {}
  int64_t size() const override { return inner.size(); }
  int seq_length() const override { return inner.seq_length(); }
  void sample(int64_t i, int32_t* out) const override {
    reads.push_back(i);
    inner.sample(i, out);
  }
};

struct Batches {
  int64_t micro = 2, grad_accum = 2, dp = 1;
  int64_t global() const { return micro * grad_accum * dp; }
};

// The micro-batches each DP rank reads in `steps` steps from consumed_samples = consumed, as
// the trainer reads them: read_micro_batch at consumed + megatron_sample_offset(k, ...).
// [rank][micro-batch] -> the micro-batch's tokens followed by its targets.
using Stream = std::vector<std::vector<std::vector<int32_t>>>;
Stream read_stream(const data::SampleDataset& d, const Batches& b, int64_t consumed,
                   int64_t steps) {
  Stream out(size_t(b.dp));
  train::MicroBatch mb;
  for (int64_t t = 0; t < steps; ++t, consumed += b.global())
    for (int64_t r = 0; r < b.dp; ++r)
      for (int64_t k = 0; k < b.grad_accum; ++k) {
        train::read_micro_batch(d, consumed + megatron_sample_offset(k, b.micro, b.dp, r), b.micro,
                                mb);
        std::vector<int32_t> both = mb.tokens;
        both.insert(both.end(), mb.targets.begin(), mb.targets.end());
        out[size_t(r)].push_back(std::move(both));
      }
  return out;
}

struct ResumeCase {
  bool blend;  // false: --data-path PREFIX; true: --data-file-list of six shards
  int64_t dp;
};

void PrintTo(const ResumeCase& c, std::ostream* os) {
  *os << (c.blend ? "data-file list" : "one prefix") << ", D=" << c.dp;
}

std::string case_name(const ::testing::TestParamInfo<ResumeCase>& info) {
  return strfmt("{}_D{}", info.param.blend ? "DataFileList" : "OnePrefix", info.param.dp);
}

struct Resume : ::testing::TestWithParam<ResumeCase> {};

}  // namespace

TEST_P(Resume, StreamFromNEqualsTheUninterruptedStreamAndReadsNothingBeforeN) {
  TOK_REQUIRE(missing_brown());
  const BrownShards& b = brown();
  const Batches batches{2, 2, GetParam().dp};
  const int64_t steps = 12, resume_step = 5, n = resume_step * batches.global();
  train::DataOptions o;
  o.sources = GetParam().blend ? data::read_data_file_list(b.list) : data::parse_data_path({b.all});
  o.blend = GetParam().blend;
  o.split = "1";
  o.seq_length = 32;
  o.seed = 1234;
  o.num_samples = {steps * batches.global(), 0, 0};
  o.cache_path = tok_test::temp_path("cache").string();

  const train::Datasets first = train::build_datasets(o);
  ASSERT_GT(first.summary.index_built, 0);
  const Stream uninterrupted = read_stream(*first.train, batches, 0, steps);

  // The restarted job: datasets built anew (from the cache, as a second start does), the
  // stream read from consumed_samples = n.
  const train::Datasets restarted = train::build_datasets(o);
  EXPECT_EQ(restarted.summary.index_built, 0);
  const CountingDataset counted(*restarted.train);
  const Stream resumed = read_stream(counted, batches, n, steps - resume_step);

  const size_t skipped = size_t(resume_step * batches.grad_accum);
  for (int64_t r = 0; r < batches.dp; ++r) {
    const auto& u = uninterrupted[size_t(r)];
    const auto& got = resumed[size_t(r)];
    ASSERT_EQ(got.size(), u.size() - skipped);
    for (size_t j = 0; j < got.size(); ++j)
      ASSERT_EQ(got[j], u[skipped + j])
          << "rank " << r << ", micro-batch " << j << " after resuming at " << n;
  }
  // Over all ranks, exactly samples [n, end) were read, each once: none of the skipped ones.
  std::vector<int64_t> reads = counted.reads;
  std::sort(reads.begin(), reads.end());
  EXPECT_EQ(reads, range(n, steps * batches.global() - n));
}

INSTANTIATE_TEST_SUITE_P(Brown, Resume,
                         ::testing::Values(ResumeCase{false, 1}, ResumeCase{false, 2},
                                           ResumeCase{true, 1}, ResumeCase{true, 2}),
                         case_name);

namespace {

// Brown's six shards blended by hand (as build_datasets blends them) with every shard read
// recorded: what a blend reads from its shards, which build_datasets does not expose.
struct CountedBlend {
  std::vector<std::unique_ptr<data::GPTDataset>> shards;
  std::vector<const CountingDataset*> counted;  // per shard, owned by blend
  std::unique_ptr<data::BlendedDataset> blend;

  CountedBlend(const BrownShards& b, int64_t size) {
    std::map<std::string, std::vector<std::unique_ptr<data::SampleDataset>>> parts;
    std::map<std::string, double> weight;
    for (size_t i = 0; i < b.shards.size(); ++i) {
      auto shard = std::make_shared<const data::IndexedDataset>(b.shards[i]);
      shards.push_back(
          std::make_unique<data::GPTDataset>(shard, 0, shard->num_sequences(), size, 32, 1234));
      auto c = std::make_unique<CountingDataset>(*shards.back());
      counted.push_back(c.get());
      parts[b.corpora[i]].push_back(std::move(c));
      weight[b.corpora[i]] += b.weights[i];
    }
    std::vector<std::unique_ptr<data::SampleDataset>> corpora;
    std::vector<double> weights;
    for (auto& [name, p] : parts) {
      corpora.push_back(std::make_unique<data::CorpusDataset>(std::move(p), 1234));
      weights.push_back(weight[name]);
    }
    blend = std::make_unique<data::BlendedDataset>(std::move(corpora), weights, size);
  }
  // The samples read from each shard since the last call.
  std::vector<std::vector<int64_t>> take_reads() {
    std::vector<std::vector<int64_t>> r;
    for (const CountingDataset* c : counted) r.push_back(std::exchange(c->reads, {}));
    return r;
  }
};

size_t total_reads(const std::vector<std::vector<int64_t>>& reads) {
  size_t n = 0;
  for (const auto& r : reads) n += r.size();
  return n;
}

}  // namespace

TEST(Resume, BlendReadsNoSkippedSampleFromAnyShard) {
  // A restarted job (a fresh blend) resuming at n reads, shard by shard and in order, exactly
  // what the uninterrupted run reads after n, and nothing else.
  TOK_REQUIRE(missing_brown());
  const Batches batches{2, 2, 2};
  const int64_t steps = 10, resume_step = 4, n = resume_step * batches.global();
  CountedBlend uninterrupted(brown(), steps * batches.global());
  read_stream(*uninterrupted.blend, batches, 0, resume_step);
  const auto before_n = uninterrupted.take_reads();
  const Stream want = read_stream(*uninterrupted.blend, batches, n, steps - resume_step);
  const auto after_n = uninterrupted.take_reads();
  EXPECT_EQ(total_reads(before_n), size_t(n));

  CountedBlend restarted(brown(), steps * batches.global());
  EXPECT_EQ(read_stream(*restarted.blend, batches, n, steps - resume_step), want);
  const auto resumed = restarted.take_reads();
  EXPECT_EQ(resumed, after_n);
  EXPECT_EQ(total_reads(resumed), size_t((steps - resume_step) * batches.global()));
}
