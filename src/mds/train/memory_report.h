// Memory per rank, computed from the shapes alone: what a model shard holds for parameters,
// gradients, Adam's moments and a training step's activations, for every pipeline stage of a
// layout, before anything is allocated (the start-up banner prints it). The same categories
// as LlamaModel::allocated_bytes(), which measures the real buffers; the tests hold the two
// equal, so the banner is the truth, not an estimate.
//
// Per rank of a stage (T ranks of a stage hold equal shards; S and D replicas the same), with
// E = 4 bytes per weight and activation element in fp32, 2 in bf16:
//   params             E B x the shard's parameters (the ParamTable)
//   grads              4 B x parameters (fp32 in either precision)
//   optimizer          8 B x parameters: Adam's m and v in fp32; bf16 adds the fp32 master (4 B)
//   activations        slots x (one micro-batch through the stage's layers: residual stream
//                      (L+1) x [n, h] and each block's BlockActs; the first stage's token ids
//                      [n] int32; the last stage's dL/d(output) [n, h]). slots = the 1F1B
//                      schedule's micro-batches in flight, min(P - stage, M). Activation
//                      recomputation (model/recompute.h) keeps less per slot: see there.
//   head               last stage: xn, dxn [n, h], rstd, losses [n], targets [n] int32, the
//                      logits chunk [min(n, 256), vpad/T] and its row statistics
//   scratch            shared by the blocks: the backward's BlockScratch, d_resid [n, h], the
//                      Ulysses staging (S > 1), the RoPE tables, and under recomputation its
//                      workspace (full: one chunk's activations and inputs; selective: the
//                      attention core's results), and the pipeline's receive buffers (the
//                      previous stage's output, the next stage's gradient: [n, h] each)
// n = micro-batch x seq / S tokens on this rank.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mds/model/block.h"
#include "mds/model/config.h"
#include "mds/model/llama.h"
#include "mds/model/params.h"

namespace mds::train {

struct MemoryReport {
  int64_t params = 0, grads = 0, optimizer = 0;
  int64_t activations = 0, head = 0, scratch = 0;
  int64_t total() const { return params + grads + optimizer + activations + head + scratch; }
};

// One rank of `shard` on a T x S layout, micro-batches of `shape`, `slots` in flight.
MemoryReport estimate_memory(const model::LlamaConfig& c, const model::ModelShard& shard,
                             int64_t sp, const model::BatchShape& shape, int64_t slots,
                             const model::Recompute& recompute = {},
                             model::Precision precision = model::Precision::fp32,
                             ops::Device device = ops::Device::cpu);  // the head's chunk

// What a model (after prepare()) and its optimizer really hold: LlamaModel::allocated_bytes()
// plus the optimizer's moments.
template <typename Model>
MemoryReport measured_memory(const Model& m, int64_t optimizer_bytes);

// The banner's table: one row per pipeline stage (layers, parameters, then MiB per category
// and the total), for the layout T x S x P with M micro-batches of `micro` sequences.
struct StageMemory {
  int64_t stage = 0, first_layer = 0, layers = 0, parameters = 0, slots = 0;
  MemoryReport memory;
};
std::vector<StageMemory> memory_per_stage(const model::LlamaConfig& c, int64_t tp, int64_t sp,
                                          int64_t pp, int64_t micro, int64_t micro_batches,
                                          const model::Recompute& recompute = {},
                                          model::Precision precision = model::Precision::fp32);
std::string format_memory_table(const std::vector<StageMemory>& stages);

}  // namespace mds::train
