// What world rank 0 writes about a run while it goes and when it ends: the log line (with MFU
// and ETA), the --log-json lines, the TensorBoard scalars (--tensorboard-dir), and at the end
// the summary, the loss-curve PNG and the terminal chart. On other ranks every call is a no-op.
//
// TensorBoard tags are Megatron-DeepSpeed's (megatron/training_log.py, training.py:
// evaluate_and_print_results), each against iterations and, for the "vs samples" / "vs tokens"
// variants, against consumed samples / tokens:
//   every --tensorboard-log-interval iterations: lm-loss-training/lm loss, learning-rate/
//     learning-rate, grad-norm/grad-norm, loss-scale/loss-scale (each also "... vs samples",
//     "... vs tokens"), steps-vs-samples/y=steps,x=samples and y=samples,x=steps,
//     steps-vs-tokens/y=steps,x=tokens and y=tokens,x=steps;
//   every --log-interval: iteration-time/iteration-time (seconds, also vs samples and tokens),
//     and the throughput group Megatron-DeepSpeed sends to wandb: throughput/samples_per_sec,
//     tokens_per_sec, tokens_per_gpu_per_sec, tflops-lm, and ours, throughput/MFU (percent);
//   each evaluation: lm-loss-validation/lm loss validation and lm loss validation ppl (and vs
//     samples, vs tokens); the test split at the end as lm loss test / lm loss test ppl.
// The loss of a training scalar is the iteration's own (as Megatron's), not the interval mean.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "mds/train/arguments.h"
#include "mds/train/metrics.h"
#include "mds/train/run_summary.h"
#include "mds/train/tensorboard.h"

namespace mds::train {

class RunReport {
 public:
  // peak_flops: one device's, for MFU (0: unknown). start_iteration: where this run begins.
  RunReport(const TrainArgs& a, bool rank0, double peak_flops, int world_size,
            int64_t start_iteration);
  RunReport(const RunReport&) = delete;
  RunReport& operator=(const RunReport&) = delete;

  // A line of its own in --log-json (the data table goes first).
  void json_line(const std::string& line);
  // The loop starts now (the ETA and the summary's wall time count from here).
  void start();
  // After every iteration: its loss, learning rate (after the step, as Megatron logs it),
  // loss scale (1 but in fp16) and gradient norm, the samples consumed so far and the seconds
  // the iteration took.
  void iteration(int64_t iteration, int64_t consumed_samples, double loss, double lr,
                 double loss_scale, double grad_norm, double seconds);
  // At --log-interval: fills log.mfu and log.eta_seconds, prints the line, writes JSON and
  // TensorBoard.
  void log(IterationLog& log);
  // An evaluation. split: "validation" or "test"; where: as the validation line says it.
  void evaluation(const std::string& split, const std::string& where, int64_t iteration,
                  int64_t consumed_samples, double loss);
  // The end: summary printed and written, plots drawn. Returns the summary.
  RunSummary finish(int64_t iteration, double flops_per_iteration);

  const LossHistory& history() const { return history_; }
  const std::string& plot_path() const { return plot_; }

 private:
  bool rank0_;
  double peak_flops_;
  int world_size_;
  int64_t seq_, gbs_, train_iters_, tb_interval_, start_iteration_;
  std::string plot_;
  struct CloseFile {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, CloseFile> json_;
  std::unique_ptr<TensorBoardWriter> tb_;
  double loop_start_ = 0, train_seconds_ = 0;
  double last_logged_loss_ = -1, last_valid_loss_ = -1;
  LossHistory history_;

  // tag against the iteration, and "tag vs samples" / "tag vs tokens".
  void scalar3(const std::string& tag, double value, int64_t iteration, int64_t samples);
};

}  // namespace mds::train
