// A Llama model shard on one rank: flat parameter and gradient buffers (see params.h), and
// the part of  embedding -> L x block -> final norm -> head -> CE(targets)  that the shard
// holds, with explicit forward and backward.
//
// As a pipeline stage it runs one micro-batch in two calls, forward and backward, and keeps
// the activations of several micro-batches in flight at once (slots: the 1F1B schedule has at
// most P - stage of them). A slot holds the residual stream after every block (L+1 buffers of
// [n, h]) and each block's saved activations; backward walks the blocks in reverse.
// With activation recomputation (model/recompute.h) a slot keeps less: under full
// recomputation a checkpointed chunk of blocks keeps only its input, and backward first runs
// the chunk's forward again into a workspace shared by all slots (one backward runs at a
// time); under selective recomputation no block keeps its attention core's output.
// A rank holding the whole model (no pipeline) uses forward_backward / forward_loss.
//
// Every buffer lives on the model's backend (ops/backend.h: the CPU, or a GPU), and so do the
// pointers the calls below take and return, except token ids and targets, which come from the
// host (the data loader) and are copied in.
//
// Elem: the element type of the weights and activations, float, bf16 or fp16 (Megatron's mixed
// precision: the fp32 master weights then live in the optimizer, optim/adamw.h); gradients are
// fp32 either way. LlamaModel is the fp32 model.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "mds/model/block.h"
#include "mds/model/config.h"
#include "mds/model/lm_head.h"
#include "mds/model/params.h"
#include "mds/model/recompute.h"
#include "mds/parallel/model_comm.h"
#include "mds/parallel/ulysses.h"

namespace mds::model {

template <typename Elem>
class LlamaModelT {
 public:
  using Element = Elem;
  explicit LlamaModelT(const LlamaConfig& config, const ModelShard& shard = {},
                       parallel::ModelComm comm = {}, const Recompute& recompute = {},
                       ops::Backend& backend = ops::cpu_backend());
  LlamaModelT(const LlamaModelT&) = delete;  // holds views into its own buffers
  LlamaModelT& operator=(const LlamaModelT&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  const ModelShard& shard() const { return shard_; }
  const ParamTable& table() const { return table_; }
  const Recompute& recompute() const { return recompute_; }
  ops::Backend& backend() const { return k_; }
  Buffer<Elem>& params() { return params_; }
  const Buffer<Elem>& params() const { return params_; }
  Buffer<float>& grads() { return grads_; }
  const Buffer<float>& grads() const { return grads_; }

  // N(0, init_std) for matrices (std/sqrt(2L) for o_proj and down_proj), ones for norms.
  // Element i of every logical tensor is drawn from a stream keyed by the tensor's name, so
  // a shard holds exactly its slice of the single-rank model's weights.
  void init_weights(uint64_t seed);
  void zero_grads();

  // ---- As a pipeline stage -----------------------------------------------------------------
  // The shape of the micro-batches to come and how many may be in flight. Allocates every
  // activation and scratch buffer a step uses, so allocated_bytes() is then the step's memory.
  void prepare(const BatchShape& shape, int slots);

  // Bytes this shard holds, by purpose (train/memory_report.h computes the same from shapes).
  struct AllocatedBytes {
    int64_t params = 0, grads = 0;
    int64_t activations = 0;  // the slots: token ids, residual stream, BlockActs, d_out
    int64_t head = 0;         // the LM head's buffers (logits chunk)
    int64_t scratch = 0;      // shared by the blocks: BlockScratch, d_resid, Ulysses, RoPE,
                              // the recomputation workspace, the pipeline's receive buffers
  };
  AllocatedBytes allocated_bytes() const;
  // Forward through this stage: the first stage embeds tokens [n], the others take the
  // previous stage's output [n, h]. Returns this stage's output [n, h] (valid until the slot
  // is reused).
  const Elem* forward(int slot, const int32_t* tokens, const Elem* input);
  // Last stage, after forward: the mean token loss of the slot's micro-batch (over this
  // rank's tokens); loss_and_grad also keeps the gradient of loss_weight x that mean for
  // backward.
  double loss(int slot, const int32_t* targets);
  double loss_and_grad(int slot, const int32_t* targets, float loss_weight);
  // Backward through this stage: d_output is the gradient of forward's output (null on the
  // last stage: loss() computed it). Weight gradients accumulate (+=). Returns the gradient of
  // the stage input [n, h] (for the previous stage; valid until the next backward).
  // On the step's last backward, grads_final(begin) says when grads() [begin, end) hold their
  // final values (the head's and final norm's at once, then each block's, the embedding's
  // last), so that their reduction can start (parallel::GradientAverager).
  using GradsFinal = std::function<void(int64_t begin)>;
  const Elem* backward(int slot, const Elem* d_output, const GradsFinal& grads_final = nullptr);
  // Where this stage receives from its neighbours, [n, h] in the backend's memory (so that a
  // device communicator fills them): the previous stage's output (null on the first stage) and
  // the next stage's gradient (null on the last). Sized by prepare().
  Elem* stage_input() { return shard_.embedding ? nullptr : stage_input_.data(); }
  Elem* stage_d_output() { return shard_.head ? nullptr : stage_d_output_.data(); }

  // ---- The whole model on one rank ---------------------------------------------------------
  // One micro-batch of b sequences of s tokens. Returns the mean token loss; the gradients of
  // loss_weight x (mean loss) accumulate into grads() (loss_weight = 1/micro-batches per step).
  double forward_backward(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t s,
                          float loss_weight);
  // The mean token loss only (evaluation).
  double forward_loss(const int32_t* tokens, const int32_t* targets, int64_t b, int64_t s);

 private:
  // One micro-batch's activations.
  struct Slot {
    Buffer<int32_t> tokens;             // first stage: for the embedding's backward
    std::vector<Buffer<Elem>> resid;    // resid[i]: input of local block i; back(): output
                                        // (empty where the plan does not keep it)
    std::vector<BlockActs<Elem>> acts;  // empty for checkpointed blocks
    Buffer<Elem> d_out;                 // last stage: dL/d(output) from loss()
    explicit Slot(ops::Backend& b) : tokens(b), d_out(b) {}
  };
  // Full recomputation: a checkpointed chunk's activations and inner residuals, shared by
  // all slots; ws_resid_[i] is the input of the chunk's block i (i >= 1), ws_resid_[0] where
  // the recomputed last block writes the output nobody reads.
  struct Workspace {
    std::vector<BlockActs<Elem>> acts;
    std::vector<Buffer<Elem>> resid;
  };

  ops::Backend& k_;
  LlamaConfig cfg_;
  ModelShard shard_;
  parallel::ModelComm comm_;
  Recompute recompute_;
  RecomputePlan plan_;
  ParamTable table_;
  Buffer<Elem> params_;  // fixed size: the views below point into them
  Buffer<float> grads_;
  int64_t layers_;                                // this stage's blocks
  std::vector<BlockWeights<Elem>> block_params_;  // per local layer, built once
  std::vector<BlockGrads> block_grads_;
  std::vector<int64_t> block_grads_begin_;  // local block l's first gradient in grads_
  int64_t head_grads_begin_;                // the final norm's and head's (end when absent)
  RopeTables rope_;
  BatchShape shape_;
  std::vector<Slot> slots_;
  Workspace ws_;
  BlockScratch<Elem> scratch_;
  parallel::UlyssesExchange ulysses_;
  BlockEnv<Elem> env_;
  Buffer<Elem> d_resid_;
  Buffer<Elem> stage_input_, stage_d_output_;  // the pipeline's receive buffers
  LMHead<Elem> head_;

  // Block l's input and the buffer of its output in slot s, and where its activations go.
  Elem* block_input(Slot& s, int64_t l);
  BlockActs<Elem>& block_acts(Slot& s, int64_t l);
  // Full recomputation: runs blocks [begin, end) forward again from the slot's kept input.
  void recompute_chunk(Slot& s, int64_t begin, int64_t end);

  Elem* param(const char* name) { return params_.data() + table_.at(name).offset; }
  float* grad(const char* name) { return grads_.data() + table_.at(name).offset; }
  int64_t vocab_rows() const { return cfg_.padded_vocab_size / comm_.tp_size(); }
};

using LlamaModel = LlamaModelT<float>;

}  // namespace mds::model
