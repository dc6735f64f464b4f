// What a run reports: Megatron-DeepSpeed's per-iteration log line (megatron/training_log.py),
// the same numbers as JSON lines for programs (--log-json), the validation line, and the
// model FLOPs behind the TFLOPs field.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "mds/model/config.h"

namespace mds::train {

// One logged interval, averaged over its iterations.
struct IterationLog {
  int64_t iteration = 0, train_iters = 0;
  int64_t consumed_samples = 0, consumed_tokens = 0;
  double elapsed_ms_per_iteration = 0;
  double learning_rate = 0;
  int64_t global_batch_size = 0;
  double lm_loss = 0;
  double loss_scale = 1.0;
  double grad_norm = 0;
  int64_t seq_length = 0;
  int64_t skipped_iterations = 0, nan_iterations = 0;
  double samples_per_second = 0, tokens_per_gpu_per_second = 0, tflops = 0;
};

// " iteration=      10/     100 | consumed_samples=          80 | ... | TFLOPs=0.12 |"
std::string format_log_line(const IterationLog& log);
// {"iteration": 10, ..., "lm_loss": 7.12, ...} on one line.
std::string format_log_json(const IterationLog& log);
// " validation loss at iteration 100 | lm loss value=5.430000 | lm loss PPL=228.100000 |"
std::string format_validation_line(const std::string& where, double loss);

// Model FLOPs of one iteration (forward + backward) with Megatron's formula:
//   12 B s L h^2 (1 + (ffn/h) 1.5 + kv/heads + s/h + vpad/(2 L h))
// (SwiGLU counts 1.5x the MLP; no causal halving, no recompute term.)
double flops_per_iteration(const model::LlamaConfig& c, int64_t global_batch_size);

}  // namespace mds::train
