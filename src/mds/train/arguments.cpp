#include "mds/train/arguments.h"

#include <CLI/CLI.hpp>
#include <iostream>

#include "mds/core/error.h"

namespace mds::train {
namespace {

// Flags every Llama recipe passes to Megatron-DeepSpeed. They describe the only architecture
// mds builds, so they are accepted and checked rather than rejected as unknown.
void add_llama_recipe_flags(CLI::App& app, std::string& normalization, double& hidden_dropout,
                            double& attention_dropout) {
  for (const char* name :
       {"--swiglu", "--use-rotary-position-embeddings", "--untie-embeddings-and-output-weights",
        "--disable-bias-linear", "--no-query-key-layer-scaling", "--no-masked-softmax-fusion",
        "--no-bias-gelu-fusion", "--no-bias-dropout-fusion", "--no-gradient-accumulation-fusion",
        "--use-flash-attn", "--use-flash-attn-v2", "--no-pipeline-parallel", "--fp32",
        "--accumulate-allreduce-grads-in-fp32"})
    app.add_flag(std::string(name))
        ->description("accepted: this is what mds always does")
        ->group("Megatron recipe flags");
  app.add_option("--normalization", normalization, "must be rmsnorm")
      ->group("Megatron recipe flags");
  app.add_option("--hidden-dropout", hidden_dropout, "must be 0")->group("Megatron recipe flags");
  app.add_option("--attention-dropout", attention_dropout, "must be 0")
      ->group("Megatron recipe flags");
}

// Megatron's rules: --recompute-method only with full granularity, and full needs one;
// --checkpoint-activations (Megatron-DeepSpeed) is full + uniform over its own layer count and
// --recompute-activations (Megatron-LM) is selective.
model::Recompute recompute_options(const std::string& granularity, const std::string& method,
                                   int64_t num_layers, bool recompute_activations,
                                   bool checkpoint_activations, int64_t checkpoint_layers) {
  using model::RecomputeGranularity;
  model::Recompute r;
  MDS_CHECK(
      int(checkpoint_activations) + int(recompute_activations) + int(!granularity.empty()) <= 1,
      "give one of --checkpoint-activations, --recompute-activations and "
      "--recompute-granularity");
  if (checkpoint_activations) {
    MDS_CHECK(method.empty() || method == "uniform",
              "--checkpoint-activations recomputes uniformly: drop --recompute-method {} or use "
              "--recompute-granularity full --recompute-method {}",
              method, method);
    MDS_CHECK(checkpoint_layers >= 1, "--checkpoint-num-layers must be positive (got {})",
              checkpoint_layers);
    r.granularity = RecomputeGranularity::full;
    r.num_layers = checkpoint_layers;
    return r;
  }
  if (recompute_activations || granularity == "selective") {
    MDS_CHECK(method.empty(), "--recompute-method {} needs --recompute-granularity full", method);
    r.granularity = RecomputeGranularity::selective;
    return r;
  }
  if (granularity.empty()) {
    MDS_CHECK(method.empty(), "--recompute-method {} needs --recompute-granularity full", method);
    return r;
  }
  MDS_CHECK(!method.empty(),
            "--recompute-granularity full needs --recompute-method uniform or block");
  MDS_CHECK(num_layers >= 1, "--recompute-num-layers must be positive (got {})", num_layers);
  r.granularity = RecomputeGranularity::full;
  r.method = method == "uniform" ? model::RecomputeMethod::uniform : model::RecomputeMethod::block;
  r.num_layers = num_layers;
  return r;
}

}  // namespace

bool parse_train_args(int argc, char** argv, TrainArgs& a) {
  CLI::App app{"mds train: pre-train a Llama model (Megatron-DeepSpeed flags)", "mds train"};
  // As argparse does, a repeated flag takes its last value (scripts append overrides).
  app.option_defaults()->always_capture_default()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);
  model::LlamaConfig& m = a.model;

  auto* g = "Model";
  app.add_option("--num-layers", m.num_layers, "transformer blocks")->group(g)->required();
  app.add_option("--hidden-size", m.hidden_size)->group(g)->required();
  app.add_option("--ffn-hidden-size", m.ffn_hidden_size, "0: int(8h/3/64)*64")->group(g);
  app.add_option("--num-attention-heads", m.num_attention_heads)->group(g)->required();
  app.add_option("--num-key-value-heads", m.num_key_value_heads, "0: same as heads")->group(g);
  app.add_option("--seq-length", m.seq_length)->group(g)->required();
  app.add_option("--max-position-embeddings", m.max_position_embeddings, "0: seq length")->group(g);
  app.add_option("--rotary-position-embeddings-theta,--rope-theta", m.rope_theta)->group(g);
  app.add_option("--layernorm-epsilon,--norm-epsilon", m.norm_eps)->group(g);
  app.add_option("--init-method-std", m.init_method_std)->group(g);
  app.add_option("--make-vocab-size-divisible-by", a.make_vocab_size_divisible_by)->group(g);
  std::string normalization = "rmsnorm";
  double hidden_dropout = 0, attention_dropout = 0;
  add_llama_recipe_flags(app, normalization, hidden_dropout, attention_dropout);
  bool bf16 = false, fp16 = false;
  app.add_flag("--bf16", bf16,
               "bf16 weights and activations, fp32 master weights, gradients and optimizer "
               "(Megatron's mixed precision; on the CPU a slow reference)")
      ->group(g);
  app.add_flag("--fp16", fp16,
               "fp16 weights and activations, fp32 master weights, gradients and optimizer, "
               "with loss scaling (dynamic unless --loss-scale; on the CPU a slow reference)")
      ->group(g);
  optim::LossScalerOptions& ls = a.loss_scaler;
  app.add_option("--loss-scale", ls.loss_scale, "fp16: a constant loss scale (default: dynamic)")
      ->group(g);
  app.add_option("--initial-loss-scale", ls.initial_scale, "fp16: the dynamic scale's start")
      ->group(g);
  app.add_option("--min-loss-scale", ls.min_scale, "fp16: the dynamic scale's floor")->group(g);
  app.add_option("--loss-scale-window", ls.window,
                 "fp16: clean steps before the dynamic scale doubles")
      ->group(g);
  app.add_option("--hysteresis", ls.hysteresis,
                 "fp16: overflows tolerated before the dynamic scale halves")
      ->group(g);

  g = "Training";
  app.add_option("--micro-batch-size", a.micro_batch_size)->group(g)->required();
  app.add_option("--global-batch-size", a.global_batch_size, "0: micro batch x data parallel")
      ->group(g);
  app.add_option("--train-iters", a.train_iters)->group(g)->required();
  app.add_option("--lr", a.lr, "peak learning rate")->group(g)->required();
  app.add_option("--min-lr", a.min_lr)->group(g);
  app.add_option("--lr-decay-style", a.lr_decay_style)
      ->check(CLI::IsMember({"cosine", "linear", "constant"}))
      ->group(g);
  app.add_option("--lr-warmup-iters", a.lr_warmup_iters)->group(g);
  app.add_option("--lr-warmup-fraction", a.lr_warmup_fraction)->group(g);
  app.add_option("--lr-decay-iters", a.lr_decay_iters, "0: train iters")->group(g);
  app.add_option("--optimizer", a.optimizer)->check(CLI::IsMember({"adamw"}))->group(g);
  app.add_option("--weight-decay", a.adam.weight_decay)->group(g);
  app.add_option("--adam-beta1", a.adam.beta1)->group(g);
  app.add_option("--adam-beta2", a.adam.beta2)->group(g);
  app.add_option("--adam-eps", a.adam.eps)->group(g);
  app.add_option("--clip-grad", a.adam.clip_grad, "global L2 norm; 0: off")->group(g);
  app.add_option("--seed", a.seed)->group(g);

  g = "Data";
  // Each --data-path is its own group of values; like Megatron's argparse (nargs='*'), a
  // repeated --data-path replaces the earlier one instead of adding to it.
  std::vector<std::vector<std::string>> data_paths;
  app.add_option("--data-path", data_paths,
                 "PREFIX of PREFIX.bin/.idx, or w1 PREFIX1 w2 PREFIX2 ...")
      ->group(g)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--data-file-list", a.data_file_list, "file of 'weight prefix corpus' lines")
      ->group(g);
  app.add_option("--split", a.split, "train,valid,test document proportions")->group(g);
  app.add_option("--data-cache-path", a.data_cache_path)->group(g);
  app.add_option("--tokenizer-type", a.tokenizer.type)->group(g)->required();
  app.add_option("--vocab-file", a.tokenizer.vocab_file)->group(g);
  app.add_option("--merge-file", a.tokenizer.merge_file)->group(g);
  app.add_option("--tokenizer-model", a.tokenizer.tokenizer_model)->group(g);
  app.add_option("--vocab-size", a.tokenizer.vocab_size, "NullTokenizer: ids < N, eod = N")
      ->group(g);

  g = "Logging, evaluation and checkpoints";
  app.add_option("--log-interval", a.log_interval)->group(g);
  app.add_option("--log-json", a.log_json, "also write one JSON object per logged iteration")
      ->group(g);
  app.add_option("--eval-interval", a.eval_interval)->group(g);
  app.add_option("--eval-iters", a.eval_iters, "0: no evaluation")->group(g);
  app.add_option("--save", a.save, "checkpoint directory")->group(g);
  app.add_option("--save-interval", a.save_interval, "0: only at the end")->group(g);
  app.add_option("--load", a.load, "checkpoint or Hugging Face model directory")->group(g);
  app.add_flag("--finetune", a.finetune, "with --load: take the weights, start at iteration 0")
      ->group(g);
  app.add_option("--tensorboard-dir", a.tensorboard_dir,
                 "write TensorBoard event files here (rank 0)")
      ->group(g);
  app.add_option("--tensorboard-log-interval", a.tensorboard_log_interval,
                 "iterations between training scalars in TensorBoard")
      ->group(g);
  for (const char* name : {"--log-timers-to-tensorboard", "--log-validation-ppl-to-tensorboard",
                           "--log-learning-rate-to-tensorboard", "--log-loss-scale-to-tensorboard"})
    app.add_flag(std::string(name))
        ->description("accepted: with --tensorboard-dir, mds always writes these")
        ->group(g);
  app.add_option("--plot", a.plot,
                 "loss-curve PNG at the end (default: beside --log-json, else in "
                 "--tensorboard-dir, else in --save)")
      ->group(g);
  std::string attention = "auto";
  app.add_option("--attention-backend", attention,
                 "flash (auto, the default) or unfused: Megatron's plain attention (the whole "
                 "masked score row, then softmax; slower, a second opinion)")
      ->group(g);
  app.add_option("--timing-log-level", a.timing_log_level,
                 "0, 1: the timers line per log line; 2: also every kernel's time at the end "
                 "(each kernel synchronised: slower)")
      ->check(CLI::Range(0, 2))
      ->group(g);
  app.add_option("--peak-tflops", a.peak_tflops,
                 "peak TFLOP/s of one device for MFU (default: the device table, see mds info)")
      ->group(g);

  g = "Parallelism";
  app.add_option("--tensor-model-parallel-size", a.tensor_parallel)->group(g);
  app.add_option("--pipeline-model-parallel-size", a.pipeline_parallel)->group(g);
  app.add_option("--ds-sequence-parallel-size", a.sequence_parallel)->group(g);
  app.add_option("--ddp-bucket-size", a.ddp_bucket_size,
                 "elements per data-parallel gradient all-reduce")
      ->group(g);

  g = "Activation recomputation";
  std::string granularity, method;
  bool checkpoint_activations = false, recompute_activations = false;
  int64_t recompute_layers = 1, checkpoint_layers = 1;
  app.add_option("--recompute-granularity", granularity,
                 "full: recompute whole blocks in backward; selective: the attention core only")
      ->check(CLI::IsMember({"full", "selective"}))
      ->group(g);
  app.add_option("--recompute-method", method,
                 "with full: uniform (chunks of --recompute-num-layers keep only their input) or "
                 "block (the first --recompute-num-layers blocks of each stage)")
      ->check(CLI::IsMember({"uniform", "block"}))
      ->group(g);
  app.add_option("--recompute-num-layers", recompute_layers, "blocks per chunk / blocks")->group(g);
  app.add_flag("--recompute-activations", recompute_activations,
               "Megatron's shorthand for --recompute-granularity selective")
      ->group(g);
  app.add_flag("--checkpoint-activations", checkpoint_activations,
               "Megatron-DeepSpeed's: full recomputation, uniform, --checkpoint-num-layers")
      ->group(g);
  app.add_flag("--deepspeed-activation-checkpointing")
      ->description(
          "accepted: mds recomputes with its own checkpointing (the same as DeepSpeed's "
          "without --partition-activations)")
      ->group(g);
  app.add_option("--checkpoint-num-layers", checkpoint_layers,
                 "blocks per chunk with --checkpoint-activations")
      ->group(g);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return false;
  } catch (const CLI::ParseError& e) {
    MDS_FAIL("{} (see 'mds train --help')", e.what());
  }

  if (!data_paths.empty()) a.data_path = data_paths.back();
  for (int i = 1; i < argc; ++i) a.command_line += (i > 1 ? " " : "") + std::string(argv[i]);
  MDS_CHECK(normalization == "rmsnorm", "--normalization {} is not supported: Llama uses rmsnorm",
            normalization);
  MDS_CHECK(hidden_dropout == 0 && attention_dropout == 0,
            "dropout is not supported (Llama pre-training uses none): pass --hidden-dropout 0 "
            "--attention-dropout 0");
  MDS_CHECK(!(bf16 && fp16), "--bf16 and --fp16 exclude each other: pass one");
  MDS_CHECK(attention == "auto" || attention == "flash" || attention == "unfused",
            "--attention-backend {}: mds has flash (auto) and unfused", attention);
  a.attention =
      attention == "unfused" ? ops::AttentionBackend::unfused : ops::AttentionBackend::flash;
  if (bf16) a.precision = model::Precision::bf16;
  if (fp16) a.precision = model::Precision::fp16;
  MDS_CHECK(ls.loss_scale >= 0, "--loss-scale must be positive (or absent: dynamic)");
  MDS_CHECK(ls.initial_scale > 0 && ls.min_scale > 0 && ls.min_scale <= ls.initial_scale,
            "--initial-loss-scale ({}) and --min-loss-scale ({}) must be positive, the minimum "
            "not above the start",
            ls.initial_scale, ls.min_scale);
  MDS_CHECK(ls.window > 0 && ls.hysteresis > 0,
            "--loss-scale-window ({}) and --hysteresis ({}) must be positive", ls.window,
            ls.hysteresis);
  MDS_CHECK(a.ddp_bucket_size > 0, "--ddp-bucket-size must be positive");
  a.recompute = recompute_options(granularity, method, recompute_layers, recompute_activations,
                                  checkpoint_activations, checkpoint_layers);
  MDS_CHECK(a.recompute.num_layers <= m.num_layers,
            "--recompute-num-layers ({}) exceeds --num-layers ({})", a.recompute.num_layers,
            m.num_layers);
  MDS_CHECK(a.micro_batch_size > 0, "--micro-batch-size must be positive");
  // The data-parallel size is known once the world is (set_data_parallel); 0 stays "micro x D".
  MDS_CHECK(a.global_batch_size >= 0 && a.global_batch_size % a.micro_batch_size == 0,
            "--global-batch-size ({}) must be a positive multiple of --micro-batch-size ({}) x "
            "data-parallel size",
            a.global_batch_size, a.micro_batch_size);
  MDS_CHECK(a.train_iters > 0, "--train-iters must be positive");
  MDS_CHECK(a.lr >= 0, "--lr must be non-negative");
  MDS_CHECK(a.log_interval > 0, "--log-interval must be positive");
  MDS_CHECK(a.eval_interval > 0, "--eval-interval must be positive");
  MDS_CHECK(a.eval_iters >= 0, "--eval-iters must be non-negative");
  MDS_CHECK(a.save_interval >= 0, "--save-interval must be non-negative");
  MDS_CHECK(a.tensorboard_log_interval > 0, "--tensorboard-log-interval must be positive");
  MDS_CHECK(a.peak_tflops >= 0, "--peak-tflops must be positive (TFLOP/s of one device)");
  MDS_CHECK(a.data_path.empty() != a.data_file_list.empty(),
            "give exactly one of --data-path (PREFIX, or w1 PREFIX1 w2 PREFIX2 ...) and "
            "--data-file-list FILE");
  MDS_CHECK(a.lr_warmup_fraction < 0 || a.lr_warmup_iters == 0,
            "give only one of --lr-warmup-iters and --lr-warmup-fraction");
  return true;
}

void set_data_parallel(TrainArgs& a, int64_t data_parallel) {
  MDS_ASSERT(data_parallel >= 1, "data-parallel size {}", data_parallel);
  a.data_parallel = data_parallel;
  if (a.global_batch_size == 0) a.global_batch_size = a.micro_batch_size * data_parallel;
  MDS_CHECK(a.global_batch_size % (a.micro_batch_size * data_parallel) == 0,
            "--global-batch-size ({}) must be a multiple of --micro-batch-size ({}) x "
            "data-parallel size ({}): change the batch sizes or the number of processes",
            a.global_batch_size, a.micro_batch_size, data_parallel);
}

}  // namespace mds::train
