// The 1F1B pipeline schedule (PipeDream-Flush, Megatron's
// forward_backward_pipelining_without_interleaving): over the M micro-batches of a step, stage
// p of P runs min(P - p - 1, M) warm-up forwards, then alternates one forward and one backward,
// then runs the remaining backwards. Backwards run in micro-batch order, so gradients
// accumulate in the same order as on one rank. At most min(P - p, M) micro-batches are in
// flight on stage p: the first stage holds P micro-batches' activations, not M.
//
// Activations [n] go to the next stage and their gradients [n] come back, point to point over
// the pipeline group; the exchanges that cross (send an activation forward while the next
// stage sends a gradient back) are paired send_recv calls, so blocking transports never
// deadlock. With P = 1 the schedule is forward, backward, forward, backward, ...
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "mds/dist/communicator.h"

namespace mds::parallel {

// The work of one stage, called by the schedule in its order.
// Elem: the activations' element type (float, or bf16 / fp16 under mixed precision).
template <typename Elem = float>
struct StageWork {
  // Micro-batch k through this stage. input: the previous stage's output (null on the first
  // stage). Returns this stage's output [n] (ignored on the last stage); it must stay valid
  // until the schedule has sent it (the next call).
  std::function<const Elem*(int64_t k, const Elem* input)> forward;
  // Its backward. d_output: the next stage's gradient (null on the last stage). Returns the
  // gradient of the input [n] (ignored on the first stage), valid until the next call.
  std::function<const Elem*(int64_t k, const Elem* d_output)> backward;
  // Where the stage receives, [n] each, in the memory the pipeline group's communicator moves
  // (the model's: LlamaModelT::stage_input, stage_d_output): the previous stage's output
  // (needed unless first) and the next stage's gradient (needed unless last).
  Elem* input_buffer = nullptr;
  Elem* d_output_buffer = nullptr;
};

// Micro-batches in flight at once on `stage` (the activation slots it needs).
int64_t pipeline_slots(int64_t stage, int64_t stages, int64_t micro_batches);

// Runs one step of `micro_batches` on this rank's stage; pp is the pipeline group (rank =
// stage). n: elements of one activation (b x s x h on this rank).
template <typename Elem>
void run_one_f_one_b(dist::Communicator& pp, int64_t micro_batches, int64_t n,
                     const StageWork<Elem>& work);

// Forward only (evaluation): micro-batch k through every stage in turn; the previous stage's
// output arrives in input_buffer [n] (unused on the first stage).
template <typename Elem>
void run_forward_only(dist::Communicator& pp, int64_t micro_batches, int64_t n,
                      const std::function<const Elem*(int64_t k, const Elem* input)>& forward,
                      Elem* input_buffer);

}  // namespace mds::parallel
