#include "mds/train/datasets.h"

#include <cstdio>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"

namespace mds::train {

Datasets build_datasets(const TrainArgs& a) {
  auto data = std::make_shared<const data::IndexedDataset>(a.data_path[0]);
  const int64_t num_docs = data->num_sequences();  // Megatron splits sequences
  const auto ranges = data::split_documents(a.split, num_docs);
  const int64_t gbs = a.global_batch_size;
  const int64_t wanted[3] = {a.train_iters * gbs,
                             (a.train_iters / a.eval_interval + 1) * a.eval_iters * gbs,
                             a.eval_iters * gbs};
  const char* names[3] = {"train", "validation", "test"};
  std::unique_ptr<data::GPTDataset> sets[3];
  std::printf("> data %s: %lld documents, %lld tokens\n", a.data_path[0].c_str(),
              (long long)num_docs, (long long)data->num_tokens());
  for (int i = 0; i < 3; ++i) {
    const auto [begin, end] = ranges[i];
    if (end <= begin || wanted[i] == 0) continue;
    sets[i] = std::make_unique<data::GPTDataset>(data, begin, end, wanted[i],
                                                 int(a.model.seq_length), a.seed);
    sets[i]->set_vocab_limit(a.model.vocab_size);
    std::printf(">   %-10s documents [%lld, %lld), %lld samples\n", names[i], (long long)begin,
                (long long)end, (long long)wanted[i]);
  }
  MDS_CHECK(sets[0] != nullptr,
            "--split {} leaves no training documents out of {}: give the first field a share",
            a.split, num_docs);
  return {std::move(sets[0]), std::move(sets[1]), std::move(sets[2])};
}

}  // namespace mds::train
