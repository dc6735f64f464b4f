// This rank's place in the 4D grid and what training does with its groups: the model shard it
// holds, its share of each micro-batch, the loss every rank logs, the whole model gathered for
// a checkpoint and the bytes each group should move per iteration.
//
// Two sets of groups when the model is on GPUs across processes: the world's (MPI) groups carry
// what lives on the host (the data broadcast, the logged loss, the gradient norm's sums, the
// checkpoint gather), and the device world's (NCCL) groups carry what lives in device memory
// (the model's tensor- and sequence-parallel traffic, the pipeline's activations, the gradient
// averaging). On CPUs both are the same MPI groups.
//
// Data: each DP rank reads its micro-batches by Megatron's pretraining sampler (sampler.h).
// Tensor- and
// sequence-parallel peers share samples: the first rank of the TP x SP block reads them and
// broadcasts (as Megatron's broadcast_data), and each SP rank keeps its s/S tokens.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "mds/data/sample_dataset.h"
#include "mds/dist/topology.h"
#include "mds/model/llama.h"
#include "mds/parallel/model_comm.h"
#include "mds/train/micro_batch.h"

namespace mds::train {

class ParallelContext {
 public:
  // Splits the world into the groups (collective over the world), and the device world, when
  // given (the NCCL world over the same ranks), into the device groups (collective over it).
  ParallelContext(dist::Communicator& world, dist::ParallelSizes sizes,
                  const model::LlamaConfig& config, dist::Communicator* device_world = nullptr);

  dist::Communicator& world() { return world_; }
  const dist::Topology& topology() const { return topology_; }
  // Group g for host buffers, and for buffers of the model's backend.
  dist::Communicator& group(dist::Group g) { return groups_.get(g); }
  dist::Communicator& device_group(dist::Group g) {
    return device_groups_.tp ? device_groups_.get(g) : groups_.get(g);
  }
  const model::ModelShard& shard() const { return shard_; }
  parallel::ModelComm model_comm() {
    return {&device_group(dist::Group::tp), &device_group(dist::Group::sp)};
  }
  bool first_stage() const { return shard_.embedding; }
  bool last_stage() const { return shard_.head; }

  // The first sample of this rank's k-th micro-batch of a step, relative to consumed_samples.
  int64_t micro_batch_offset(int64_t k, int64_t micro) const;
  // Samples [first, first + b) cut to this rank's tokens (b x s/S), read once per TP x SP
  // block. Only the first and last pipeline stages need them; others get an empty batch.
  void read_micro_batch(const data::SampleDataset& dataset, int64_t first, int64_t b,
                        MicroBatch& local);

  // The loss every rank logs: the last stage's, broadcast over the pipeline, averaged over
  // the sequence- and data-parallel ranks (equal token counts: the mean of means is the mean).
  double reduce_loss(double last_stage_loss);

  // World rank 0 gets the whole model (full_table's layout) from the TP x PP shards of
  // data- and sequence-parallel rank 0 (`local`: this rank's fp32 weights, laid out by its
  // shard's table); the other ranks send theirs and get an empty vector.
  std::vector<float> gather_model(const std::vector<float>& local, const model::LlamaConfig& c,
                                  const model::ParamTable& full_table);
  // This rank's slices (laid out by `local_table`) of a whole model's parameters.
  static std::vector<float> take_slices(const model::ParamTable& full_table, const float* full,
                                        const model::ParamTable& local_table);

  // Seconds spent in the communication of group g, host and device (dp counts the SxD
  // gradient group too).
  double comm_seconds(dist::Group g);
  // Runs f (an evaluation) without counting its traffic in comm_summary.
  template <typename F>
  auto uncounted(F&& f) {
    std::array<dist::CommStats, dist::kNumGroups> before;
    for (int g = 0; g < dist::kNumGroups; ++g) before[g] = stats(dist::Group(g));
    auto result = f();
    for (int g = 0; g < dist::kNumGroups; ++g) {
      const dist::CommStats now = stats(dist::Group(g));
      for (int k = 0; k < dist::kNumCommKinds; ++k) {
        uncounted_[g].calls[k] += now.calls[k] - before[g].calls[k];
        uncounted_[g].bytes[k] += now.bytes[k] - before[g].bytes[k];
      }
    }
    return result;
  }
  // "> tp group (2 ranks): N bytes per iteration, ..." for each group of more than one rank
  // (training traffic: evaluations run uncounted), and beside it what a training iteration
  // moves in theory.
  // Model: LlamaModelT<float>, <bf16> or <fp16> (16-bit activations move in 2-byte elements).
  template <typename Model>
  std::string comm_summary(int64_t iterations, int64_t micro_batches, int64_t micro,
                           const Model& m);

 private:
  dist::Communicator& world_;
  dist::Topology topology_;
  dist::ProcessGroups groups_;
  dist::ProcessGroups device_groups_;    // empty: the device groups are groups_
  dist::CommStats stats(dist::Group g);  // of both groups g
  model::ModelShard shard_;
  std::array<dist::CommStats, dist::kNumGroups> uncounted_{};  // evaluation traffic
  MicroBatch whole_;                                           // the block leader's read
  std::vector<int32_t> shared_;                                // tokens | targets, broadcast
};

}  // namespace mds::train
