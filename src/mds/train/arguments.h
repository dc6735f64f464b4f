// `mds train` arguments: Megatron-DeepSpeed's flag names, defaults and derived values
// (megatron/arguments.py), so a Megatron command line carries over unchanged.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "mds/data/tokenizer.h"
#include "mds/model/config.h"
#include "mds/model/recompute.h"
#include "mds/ops/attention_backend.h"
#include "mds/optim/adamw.h"
#include "mds/optim/loss_scaler.h"

namespace mds::train {

struct TrainArgs {
  model::LlamaConfig model;
  model::Precision precision = model::Precision::fp32;  // --bf16, --fp16: mixed precision
  optim::LossScalerOptions loss_scaler;                 // --fp16's (--loss-scale, ...)
  ops::AttentionBackend attention = ops::AttentionBackend::flash;  // --attention-backend
  int64_t make_vocab_size_divisible_by = 128;

  // Batch and schedule.
  int64_t micro_batch_size = 0;
  int64_t global_batch_size = 0;  // 0: micro_batch_size x data-parallel size
  int64_t train_iters = 0;
  double lr = -1, min_lr = 0.0;
  std::string lr_decay_style = "linear";
  int64_t lr_warmup_iters = 0;
  double lr_warmup_fraction = -1;  // < 0: use lr_warmup_iters
  int64_t lr_decay_iters = 0;      // 0: train_iters
  std::string optimizer = "adamw";
  optim::AdamWOptions adam;
  uint64_t seed = 1234;

  // Data.
  std::vector<std::string> data_path;  // PREFIX, or w1 p1 w2 p2 ...
  std::string data_file_list;          // lines of `weight prefix corpus`
  std::string split = "969, 30, 1";
  std::string data_cache_path;
  data::TokenizerOptions tokenizer;

  // Logging, evaluation, checkpoints.
  int64_t log_interval = 100;
  std::string log_json;
  int64_t eval_interval = 1000;
  int64_t eval_iters = 100;
  std::string save, load;
  int64_t save_interval = 0;
  bool finetune = false;                 // --load weights only: restart at iteration 0
  std::string tensorboard_dir;           // event files of rank 0; "" none
  int64_t tensorboard_log_interval = 1;  // iterations between training scalars
  std::string plot;                      // the loss-curve PNG; "" beside the logs (trainer.cpp)
  double peak_tflops = 0;                // > 0: one device's peak for MFU, instead of the table
  int64_t timing_log_level = 0;          // 2: the per-kernel time table at the end of the run

  // Parallel layout. data_parallel = world / (T x P x S), set by set_data_parallel.
  int64_t tensor_parallel = 1, pipeline_parallel = 1, sequence_parallel = 1;
  int64_t data_parallel = 1;
  int64_t ddp_bucket_size = 40000000;  // Megatron's floor: max(4e7, 1e6 x dp)

  // Activation recomputation (--recompute-*, --checkpoint-activations).
  model::Recompute recompute;

  std::string command_line;  // as given, for checkpoints and logs

  // Micro-batches each data-parallel rank runs per step (gradient accumulation steps).
  int64_t num_micro_batches() const {
    return global_batch_size / (micro_batch_size * data_parallel);
  }
};

// Parses argv (argv[0] = "train"). Returns false when --help was printed. Every error is a
// UserError of one line naming the flag.
bool parse_train_args(int argc, char** argv, TrainArgs& args);

// Once the world size is known: D, the default global batch (micro x D) and its check.
void set_data_parallel(TrainArgs& args, int64_t data_parallel);

}  // namespace mds::train
