#include "mds/ops/targets.h"

#include "mds/core/error.h"

namespace mds::ops {

void check_targets(const int32_t* targets, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; ++i)
    MDS_CHECK(targets[i] >= 0 && targets[i] < vocab,
              "target token id {} (position {}) is outside the model vocabulary [0, {}): the data "
              "was tokenized with a different tokenizer; check --vocab-size and the tokenizer",
              targets[i], i, vocab);
}

}  // namespace mds::ops
