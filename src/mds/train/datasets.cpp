// Datasets from data sources: shard splits, Megatron's per-shard counts, corpora, the blend,
// and the startup table.
#include "mds/train/datasets.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "mds/core/error.h"
#include "mds/data/blended_dataset.h"
#include "mds/data/gpt_dataset.h"
#include "mds/data/indexed_dataset.h"

namespace mds::train {
namespace {

constexpr const char* kSplitNames[3] = {"train", "valid", "test"};

// One split of one shard through the index cache.
std::unique_ptr<data::GPTDataset> shard_split(std::shared_ptr<const data::IndexedDataset> shard,
                                              std::pair<int64_t, int64_t> range, int64_t n,
                                              const DataOptions& o, data::IndexCache& cache) {
  const data::IndexMapKey key{shard->prefix(), range.first, range.second, n, o.seq_length, o.seed};
  data::GPTIndexMaps maps;
  try {
    maps = cache.get(key, [&] {
      const std::vector<int32_t> sizes = shard->sizes();
      return data::build_gpt_index_maps(sizes, range.first, range.second, n, o.seq_length, o.seed);
    });
  } catch (const UserError& e) {
    throw UserError(strfmt("{}: {}", shard->prefix(), e.what()));
  }
  auto d = std::make_unique<data::GPTDataset>(std::move(shard), std::move(maps), n, o.seq_length);
  d->set_vocab_limit(o.vocab_limit);
  return d;
}

}  // namespace

std::array<int64_t, 3> megatron_num_samples(int64_t train_iters, int64_t gbs, int64_t eval_interval,
                                            int64_t eval_iters) {
  return {train_iters * gbs, (train_iters / eval_interval + 1) * eval_iters * gbs,
          eval_iters * gbs};
}

DataOptions data_options(const TrainArgs& a) {
  DataOptions o;
  if (!a.data_file_list.empty()) {
    o.sources = data::read_data_file_list(a.data_file_list);
    o.blend = true;
  } else {
    o.sources = data::parse_data_path(a.data_path);
    o.blend = o.sources.size() > 1;
  }
  o.split = a.split;
  o.seq_length = int(a.model.seq_length);
  o.seed = a.seed;
  o.num_samples =
      megatron_num_samples(a.train_iters, a.global_batch_size, a.eval_interval, a.eval_iters);
  o.cache_path = a.data_cache_path;
  o.vocab_limit = a.model.vocab_size;
  return o;
}

Datasets build_datasets(const TrainArgs& a) {
  return build_datasets(data_options(a));
}

Datasets build_datasets(const DataOptions& o) {
  MDS_ASSERT(!o.sources.empty(), "no data sources");
  double weight_sum = 0;
  for (const auto& s : o.sources) weight_sum += s.weight;
  MDS_CHECK(weight_sum > 0, "the data weights sum to 0: give at least one shard a weight");
  data::IndexCache cache(o.cache_path, o.role);
  Datasets out;
  out.summary.requested = o.num_samples;

  // Corpora in sorted order (Megatron: corpus_list = sorted(set(corpuses))).
  std::map<std::string, CorpusSummary> rows;
  std::map<std::string, std::array<std::vector<std::unique_ptr<data::SampleDataset>>, 3>> parts;
  for (const auto& s : o.sources) {
    const double w = s.weight / weight_sum;
    CorpusSummary& row = rows[s.corpus];
    row.name = s.corpus;
    row.weight += w;
    if (w == 0) continue;  // asked for no samples: not opened
    // Opening validates the shard and maps nothing: its files are mapped when a sample first
    // reads it, so startup memory does not grow with the shard count beyond the index maps.
    auto shard = std::make_shared<const data::IndexedDataset>(s.prefix);
    const int64_t num_docs = shard->num_sequences();  // Megatron splits sequences
    ++row.shards;
    row.documents += num_docs;
    row.tokens += shard->num_tokens();
    const auto ranges = data::split_documents(o.split, num_docs);
    for (int i = 0; i < 3; ++i) {
      const int64_t n = !o.blend ? o.num_samples[size_t(i)]
                                 : int64_t(std::ceil(double(o.num_samples[size_t(i)]) * w * 1.005));
      if (n == 0 || ranges[size_t(i)].second <= ranges[size_t(i)].first) continue;
      parts[s.corpus][size_t(i)].push_back(shard_split(shard, ranges[size_t(i)], n, o, cache));
      row.samples[size_t(i)] += n;
    }
  }

  std::unique_ptr<data::SampleDataset>* sets[3] = {&out.train, &out.valid, &out.test};
  for (int i = 0; i < 3; ++i) {
    std::vector<std::unique_ptr<data::SampleDataset>> corpora;
    std::vector<double> counts;
    for (auto& [name, p] : parts) {
      auto& shards = p[size_t(i)];
      if (shards.empty()) continue;
      counts.push_back(double(rows[name].samples[size_t(i)]));
      if (!o.blend)
        corpora.push_back(std::move(shards.front()));
      else
        corpora.push_back(std::make_unique<data::CorpusDataset>(std::move(shards), o.seed));
    }
    if (corpora.empty()) continue;
    if (!o.blend) {
      *sets[i] = std::move(corpora.front());
    } else {
      int64_t total = 0;
      for (double c : counts) total += int64_t(c);
      // Weights = each corpus's share of the samples built (BlendableDataset normalises).
      *sets[i] = std::make_unique<data::BlendedDataset>(std::move(corpora), counts, total);
    }
  }
  MDS_CHECK(out.train != nullptr,
            "--split {} leaves no training documents in any shard: give the first field a share",
            o.split);
  for (auto& [name, row] : rows) out.summary.corpora.push_back(row);
  out.summary.index_built = cache.num_built();
  out.summary.index_loaded = cache.num_loaded();
  out.summary.cache_dir = cache.last_dir();
  return out;
}

CorpusSummary DataSummary::total() const {
  CorpusSummary t;
  t.name = "total";
  for (const auto& c : corpora) {
    t.weight += c.weight;
    t.shards += c.shards;
    t.documents += c.documents;
    t.tokens += c.tokens;
    for (size_t i = 0; i < 3; ++i) t.samples[i] += c.samples[i];
  }
  return t;
}

std::string DataSummary::table() const {
  std::string s = strfmt("> data: {} corpora; samples requested: train {}, valid {}, test {}\n",
                         corpora.size(), requested[0], requested[1], requested[2]);
  size_t width = 6;  // corpus names are often paths: the column fits the longest
  for (const auto& c : corpora) width = std::max(width, c.name.size());
  const int w = int(width);
  char line[1024];
  std::snprintf(line, sizeof line, ">   %-*s %8s %7s %11s %14s %10s %10s %10s\n", w, "corpus",
                "weight", "shards", "documents", "tokens", "train", "valid", "test");
  s += line;
  auto row = [&](const CorpusSummary& c) {
    std::snprintf(line, sizeof line, ">   %-*s %8.4f %7lld %11lld %14lld %10lld %10lld %10lld\n", w,
                  c.name.substr(0, 512).c_str(), c.weight, (long long)c.shards,
                  (long long)c.documents, (long long)c.tokens, (long long)c.samples[0],
                  (long long)c.samples[1], (long long)c.samples[2]);
    s += line;
  };
  for (const auto& c : corpora) row(c);
  row(total());
  s += strfmt("> index maps: built {}, loaded cached index {}{}\n", index_built, index_loaded,
              cache_dir.empty() ? std::string() : strfmt(" (cache {})", cache_dir));
  return s;
}

std::string DataSummary::json() const {
  auto one = [](const CorpusSummary& c) {
    nlohmann::json j = {{"name", c.name},     {"weight", c.weight},
                        {"shards", c.shards}, {"documents", c.documents},
                        {"tokens", c.tokens}, {"samples", nlohmann::json::object()}};
    for (size_t i = 0; i < 3; ++i) j["samples"][kSplitNames[i]] = c.samples[i];
    return j;
  };
  nlohmann::json d;
  d["corpora"] = nlohmann::json::array();
  for (const auto& c : corpora) d["corpora"].push_back(one(c));
  d["total"] = one(total());
  for (size_t i = 0; i < 3; ++i) d["requested"][kSplitNames[i]] = requested[i];
  d["index_maps"] = {{"built", index_built}, {"loaded", index_loaded}};
  return nlohmann::json{{"data", d}}.dump();
}

}  // namespace mds::train
