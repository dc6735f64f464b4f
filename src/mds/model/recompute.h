// Activation recomputation: trading compute for memory, with Megatron's choices.
//
//   --recompute-granularity full   a checkpointed block keeps nothing of its forward but its
//                                  input; backward runs its forward again first.
//     --recompute-method uniform   the stage's blocks form chunks of --recompute-num-layers;
//                                  a chunk keeps only its input and is recomputed as a whole.
//     --recompute-method block     the first --recompute-num-layers blocks of the stage are
//                                  checkpointed one by one, the others keep everything.
//   --recompute-granularity selective   every block drops its attention core's output (and
//                                  its row log-sum-exp) and recomputes it from the saved q, k,
//                                  v in backward: the cheapest part to redo per byte saved.
// Megatron-DeepSpeed's --checkpoint-activations is full + uniform with
// --checkpoint-num-layers (default 1).
//
// Recomputing repeats a block's forward exactly (the same kernels on the same inputs), so the
// gradients are bitwise the ones of a run that keeps everything. Under tensor or sequence
// parallelism the recomputed forward repeats its all-reduces and all-to-alls.
#pragma once

#include <cstdint>
#include <string>

namespace mds::model {

enum class RecomputeGranularity { none, full, selective };
enum class RecomputeMethod { uniform, block };

struct Recompute {
  RecomputeGranularity granularity = RecomputeGranularity::none;
  RecomputeMethod method = RecomputeMethod::uniform;
  int64_t num_layers = 1;
  bool selective() const { return granularity == RecomputeGranularity::selective; }
  std::string describe() const;  // for the banner: "none", "full, uniform, 2 layers", ...
};

// Which of a stage's `layers` blocks are checkpointed under full recomputation, in chunks.
class RecomputePlan {
 public:
  RecomputePlan(const Recompute& r, int64_t layers);

  bool checkpointed(int64_t l) const;  // l's activations are dropped after forward
  int64_t chunk_begin(int64_t l) const;
  int64_t chunk_end(int64_t l) const;
  // Whether a micro-batch's slot keeps resid[l], the input of block l (l = layers: the
  // stage's output): inside a chunk only its first input is kept.
  bool keeps_input(int64_t l) const;
  int64_t max_chunk() const { return max_chunk_; }  // the workspace's blocks, 0 without
  int64_t checkpointed_layers() const;              // blocks whose forward runs twice

 private:
  int64_t layers_ = 0;
  int64_t chunk_ = 0;         // uniform: chunk length; block: 1 (0: none checkpointed)
  int64_t checkpointed_ = 0;  // uniform: all layers; block: the first num_layers
  int64_t max_chunk_ = 0;
};

}  // namespace mds::model
