#include "mds/model/recompute.h"

#include <algorithm>

#include "mds/core/error.h"

namespace mds::model {

std::string Recompute::describe() const {
  switch (granularity) {
    case RecomputeGranularity::none:
      return "none";
    case RecomputeGranularity::selective:
      return "selective (attention core)";
    case RecomputeGranularity::full:
      return strfmt("full, {}, {} layer{}",
                    method == RecomputeMethod::uniform ? "uniform" : "block", num_layers,
                    num_layers == 1 ? "" : "s");
  }
  return "";
}

RecomputePlan::RecomputePlan(const Recompute& r, int64_t layers) : layers_(layers) {
  if (r.granularity != RecomputeGranularity::full || layers == 0) return;
  MDS_ASSERT(r.num_layers >= 1, "recompute num_layers {}", r.num_layers);
  if (r.method == RecomputeMethod::uniform) {
    chunk_ = std::min(r.num_layers, layers);
    checkpointed_ = layers;
  } else {
    chunk_ = 1;
    checkpointed_ = std::min(r.num_layers, layers);
  }
  max_chunk_ = chunk_;
}

bool RecomputePlan::checkpointed(int64_t l) const {
  return l < checkpointed_;
}

int64_t RecomputePlan::chunk_begin(int64_t l) const {
  return checkpointed(l) ? l / chunk_ * chunk_ : l;
}

int64_t RecomputePlan::chunk_end(int64_t l) const {
  return checkpointed(l) ? std::min(chunk_begin(l) + chunk_, checkpointed_) : l + 1;
}

bool RecomputePlan::keeps_input(int64_t l) const {
  return l >= layers_ || !checkpointed(l) || chunk_begin(l) == l;
}

int64_t RecomputePlan::checkpointed_layers() const {
  return checkpointed_;
}

}  // namespace mds::model
