// The end of the model: final RMSNorm, output projection over the padded vocabulary and the
// cross-entropy loss, fused in row chunks so that the [n, vocab] logits exist one chunk at a
// time (at vocab 50k and n = 4096 tokens, full logits would be 800 MB).
//
//   xn = rmsnorm(x) [n, h];  logits = xn @ lm_head^T [n, vpad];  loss_i = CE(logits_i, target_i)
// Padded vocabulary rows are masked out of the softmax, so the loss sees only the real vocab.
//
// Tensor parallelism: lm_head is split by vocabulary rows, so a rank computes logits for its
// vpad/T columns only and the cross entropy is Megatron's vocab-parallel one: all-reduces of
// the row max, the sum of exponentials and the target logit; the full logits are never
// gathered. The gradient of xn is summed over the ranks.
//
// Elem: the element type of x, the weights, xn and the logits (float, or bf16 / fp16 for
// mixed precision); rstd, the losses and the row statistics are fp32 (the sum of exps double), and
// the weight gradients fp32.
#pragma once

#include <cstdint>

#include "mds/core/buffer.h"
#include "mds/model/config.h"
#include "mds/parallel/model_comm.h"

namespace mds::model {

// Rows of logits the head computes at once, bounding its scratch to chunk x cols elements
// (cols = vpad/T) of elem_bytes: 256 on the CPU, where the chunk stays in cache; on a GPU as many
// as fit in 512 MiB, a multiple of 256, because each chunk's weight-gradient GEMM reads and
// writes the whole fp32 [cols, h] head gradient (824 MB at vocab 50k and h 2048): few large
// chunks save most of that memory traffic.
int64_t head_chunk_rows(ops::Device device, int64_t cols, int64_t elem_bytes);

template <typename Elem>
class LMHead {
 public:
  explicit LMHead(ops::Backend& b = ops::cpu_backend())
      : k_(b),
        xn_(b),
        rstd_(b),
        dxn_(b),
        logits_(b),
        losses_(b),
        row_max_(b),
        target_logit_(b),
        sum_exp_(b),
        targets_(b) {}

  // Rows of logits computed at once (head_chunk_rows): kChunk on the CPU.
  static constexpr int64_t kChunk = 256;

  // Allocates the buffers for micro-batches of n tokens up front (the calls below would
  // otherwise on first use), so that a shard's memory is all taken before the first step.
  void prepare(int64_t n, const LlamaConfig& c, int64_t tp_size);
  // Bytes held: xn, dxn [n, h]; rstd, losses [n]; the logits chunk [chunk, vpad/T] and its row
  // statistics (float max, float target logit, double sum of exponentials) [chunk]; the
  // targets [n] (int32, copied to the backend).
  int64_t allocated_bytes() const;

  // x, the weights and the gradients are in the backend's memory; targets on the host.
  // Sum of the per-token losses over the n tokens (no gradients).
  double forward(const Elem* x, const int32_t* targets, int64_t n, const Elem* norm_w,
                 const Elem* head_w, const LlamaConfig& c, const parallel::ModelComm& comm);

  // Same sum; and the gradients of (loss_weight * sum of losses): dx [n, h] overwritten,
  // d_norm_w [h] and d_head_w [vpad/T, h] accumulated (+=).
  double forward_backward(Elem* dx, float* d_norm_w, float* d_head_w, const Elem* x,
                          const int32_t* targets, int64_t n, const Elem* norm_w, const Elem* head_w,
                          float loss_weight, const LlamaConfig& c, const parallel::ModelComm& comm);

 private:
  ops::Backend& k_;
  Buffer<Elem> xn_;
  Buffer<float> rstd_;
  Buffer<Elem> dxn_, logits_;
  Buffer<float> losses_;
  Buffer<float> row_max_, target_logit_;
  Buffer<double> sum_exp_;
  Buffer<int32_t> targets_;
  // Sizes the buffers, copies the targets in and normalises x into xn_.
  void norm(const Elem* x, const int32_t* targets, int64_t n, const Elem* norm_w,
            const LlamaConfig& c, int64_t cols);
  // losses_[r, r+m) from logits_ [m, cols]; with dscale != 0, logits_ becomes dlogits.
  void chunk_loss(int64_t r, int64_t m, bool grad, float dscale, const LlamaConfig& c,
                  const parallel::ModelComm& comm);
  double sum_losses(int64_t n) const;
  int64_t chunk_rows(int64_t cols) const {
    return head_chunk_rows(k_.device(), cols, int64_t(sizeof(Elem)));
  }
};

}  // namespace mds::model
