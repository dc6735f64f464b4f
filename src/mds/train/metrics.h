// What a run reports: Megatron-DeepSpeed's per-iteration log line (megatron/training_log.py)
// with two fields of ours at the end (MFU, ETA), the same numbers as JSON lines for programs
// (--log-json), the validation line, and the model FLOPs behind the TFLOPs field.
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
  // Ours, after Megatron's fields. mfu: percent of one device's peak (the TFLOPs field over
  // it); < 0 when the peak is unknown, and then not printed. eta: seconds, < 0 not printed.
  double mfu = -1;
  double eta_seconds = -1;
};

// " iteration=      10/     100 | consumed_samples=          80 | ... | TFLOPs=0.12 |
//   MFU=3.10% | ETA=0:01:05 |"
std::string format_log_line(const IterationLog& log);
// {"iteration": 10, ..., "lm_loss": 7.12, ...} on one line.
std::string format_log_json(const IterationLog& log);
// " validation loss at iteration 100 | lm loss value=5.430000 | lm loss PPL=228.100000 |"
std::string format_validation_line(const std::string& where, double loss);

// "H:MM:SS" (hours unbounded: 27:03:04), seconds rounded to the nearest.
std::string format_duration(double seconds);

// Model FLOPs utilization in percent: achieved FLOP/s per device over the peak of one device;
// -1 when the peak is unknown (0).
double mfu_percent(double tflops_per_device, double peak_flops);

// Model FLOPs of one iteration (forward + backward) with Megatron's formula:
//   12 B s L h^2 (1 + (ffn/h) 1.5 + kv/heads + s/h + vpad/(2 L h))
// (SwiGLU counts 1.5x the MLP; no causal halving, no recompute term.)
double flops_per_iteration(const model::LlamaConfig& c, int64_t global_batch_size);

}  // namespace mds::train
