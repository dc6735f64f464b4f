#include "mds/train/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>

#include "mds/ckpt/checkpoint_dir.h"
#include "mds/ckpt/hf_checkpoint.h"
#include "mds/core/error.h"
#include "mds/data/gpt_dataset.h"
#include "mds/data/indexed_dataset.h"
#include "mds/model/llama.h"
#include "mds/optim/adamw.h"
#include "mds/optim/lr_schedule.h"
#include "mds/train/datasets.h"
#include "mds/train/metrics.h"
#include "mds/train/micro_batch.h"

namespace mds::train {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

void print_banner(const TrainArgs& a, const model::LlamaModel& m) {
  const model::LlamaConfig& c = m.config();
  std::printf(
      "> model: Llama, %lld layers, hidden %lld, ffn %lld, heads %lld (kv %lld), seq %lld, "
      "vocab %lld (padded %lld)\n",
      (long long)c.num_layers, (long long)c.hidden_size, (long long)c.ffn_hidden_size,
      (long long)c.num_attention_heads, (long long)c.kv_heads(), (long long)c.seq_length,
      (long long)c.vocab_size, (long long)c.padded_vocab_size);
  std::printf("> parameters: %.2fM; fp32 on CPU, %d threads\n", m.table().total() / 1e6,
              omp_get_max_threads());
  std::printf("> batch: micro %lld x %lld micro-batches = global %lld sequences (%lld tokens)\n",
              (long long)a.micro_batch_size, (long long)a.num_micro_batches(),
              (long long)a.global_batch_size, (long long)(a.global_batch_size * c.seq_length));
}

// Mean loss over eval_iters global batches of `dataset`, from `consumed` onwards.
double evaluate(model::LlamaModel& model, const data::SampleDataset& dataset, int64_t& consumed,
                const TrainArgs& a, MicroBatch& mb) {
  double sum = 0;
  int64_t count = 0;
  for (int64_t it = 0; it < a.eval_iters; ++it)
    for (int64_t k = 0; k < a.num_micro_batches(); ++k, ++count) {
      read_micro_batch(dataset, consumed, a.micro_batch_size, mb);
      consumed += a.micro_batch_size;
      sum += model.forward_loss(mb.tokens.data(), mb.targets.data(), mb.b, mb.s);
    }
  return sum / double(count);
}

optim::LRScheduleOptions schedule_options(const TrainArgs& a) {
  optim::LRScheduleOptions o;
  o.max_lr = a.lr;
  o.min_lr = a.min_lr;
  o.style = optim::parse_decay_style(a.lr_decay_style);
  const int64_t gbs = a.global_batch_size;
  o.decay_samples = (a.lr_decay_iters > 0 ? a.lr_decay_iters : a.train_iters) * gbs;
  o.warmup_samples = a.lr_warmup_fraction >= 0
                         ? int64_t(a.lr_warmup_fraction * double(o.decay_samples))
                         : a.lr_warmup_iters * gbs;
  return o;
}

// --load: weights from a checkpoint folder or a plain Hugging Face folder. RoPE theta and the
// norm epsilon come from its config.json. A checkpoint written by mds also restores the
// iteration and consumed samples (so the data stream and LR schedule continue) unless
// --finetune; the optimizer's moments start fresh (full resume comes with the resume work).
ckpt::TrainState load_weights(const TrainArgs& a, model::LlamaModel& m) {
  const std::string dir = ckpt::resolve_load_dir(a.load);
  ckpt::load_hf_checkpoint(dir, m.config(), m.table(), m.params().data());
  std::optional<ckpt::TrainState> state = ckpt::read_train_state(dir);
  std::printf("> loaded weights from %s\n", dir.c_str());
  if (!state || a.finetune) return {};
  std::printf(
      "> continuing at iteration %lld, %lld consumed samples (optimizer moments start "
      "fresh)\n",
      (long long)state->iteration, (long long)state->consumed_samples);
  return *state;
}

// Before the model exists: the checkpoint's config.json decides RoPE theta and norm epsilon.
void apply_checkpoint_config(TrainArgs& a) {
  const ckpt::HfConfig hf = ckpt::read_hf_config(ckpt::resolve_load_dir(a.load));
  a.model.rope_theta = hf.rope_theta;
  a.model.norm_eps = float(hf.rms_norm_eps);
}

void save(const TrainArgs& a, const model::LlamaModel& m, int64_t iteration, int64_t consumed,
          int32_t eod) {
  ckpt::TrainState state;
  state.iteration = iteration;
  state.consumed_samples = consumed;
  state.args = {{"command_line", a.command_line}, {"seed", a.seed}};
  ckpt::HfSaveOptions options;
  options.bos_token_id = options.eos_token_id = eod;
  const std::string dir =
      ckpt::save_checkpoint(a.save, state, m.config(), m.table(),
                            const_cast<model::LlamaModel&>(m).params().data(), options);
  std::printf("> saved checkpoint at iteration %lld to %s\n", (long long)iteration, dir.c_str());
  std::fflush(stdout);
}

}  // namespace

int run_training(TrainArgs a) {
  const auto tokenizer = data::build_tokenizer(a.tokenizer);
  a.model.vocab_size = tokenizer->vocab_size();
  if (!a.load.empty()) apply_checkpoint_config(a);
  a.model.finalize(a.make_vocab_size_divisible_by, a.tensor_parallel);

  model::LlamaModel model(a.model);
  model.init_weights(a.seed);
  print_banner(a, model);
  const ckpt::TrainState start = a.load.empty() ? ckpt::TrainState{} : load_weights(a, model);
  Datasets data = build_datasets(a);
  std::fputs(data.summary.table().c_str(), stdout);

  optim::AdamW optimizer(model.table(), a.adam);
  optim::LRSchedule schedule(schedule_options(a));
  std::FILE* json_log = nullptr;
  if (!a.log_json.empty()) {
    const auto parent = std::filesystem::path(a.log_json).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    json_log = std::fopen(a.log_json.c_str(), "w");
    MDS_CHECK(json_log, "cannot write --log-json {}: check the path is writable", a.log_json);
    std::fprintf(json_log, "%s\n", data.summary.json().c_str());  // first line: the data table
  }

  const int64_t gbs = a.global_batch_size, nmb = a.num_micro_batches();
  const double flops = flops_per_iteration(model.config(), gbs);
  MicroBatch mb;
  int64_t consumed = start.consumed_samples, iteration = start.iteration, valid_consumed = 0;
  schedule.set_num_samples(consumed);
  int64_t last_saved = -1;
  double interval_loss = 0, interval_seconds = 0;
  int64_t interval_iters = 0;

  while (iteration < a.train_iters) {
    const auto start = Clock::now();
    model.zero_grads();
    double loss = 0;
    for (int64_t k = 0; k < nmb; ++k) {
      read_micro_batch(*data.train, consumed + k * a.micro_batch_size, a.micro_batch_size, mb);
      loss += model.forward_backward(mb.tokens.data(), mb.targets.data(), mb.b, mb.s,
                                     1.0f / float(nmb)) /
              double(nmb);
    }
    MDS_CHECK(std::isfinite(loss),
              "lm loss is {} at iteration {}: training diverged; lower --lr, raise "
              "--lr-warmup-iters or check the data (no checkpoint was written for it)",
              loss, iteration + 1);
    const double grad_norm =
        optimizer.step(model.params().data(), model.grads().data(), schedule.lr());
    schedule.step(gbs);
    consumed += gbs;
    ++iteration;
    interval_loss += loss;
    interval_seconds += seconds_since(start);
    ++interval_iters;

    if (iteration % a.log_interval == 0 || iteration == a.train_iters) {
      IterationLog log;
      log.iteration = iteration;
      log.train_iters = a.train_iters;
      log.consumed_samples = consumed;
      log.consumed_tokens = consumed * a.model.seq_length;
      const double per_iter = interval_seconds / double(interval_iters);
      log.elapsed_ms_per_iteration = per_iter * 1e3;
      log.learning_rate = schedule.lr();
      log.global_batch_size = gbs;
      log.lm_loss = interval_loss / double(interval_iters);
      log.grad_norm = grad_norm;
      log.seq_length = a.model.seq_length;
      log.samples_per_second = double(gbs) / per_iter;
      log.tokens_per_gpu_per_second = log.samples_per_second * double(a.model.seq_length);
      log.tflops = flops / per_iter / 1e12;
      std::printf("%s\n", format_log_line(log).c_str());
      std::fflush(stdout);
      if (json_log) {
        std::fprintf(json_log, "%s\n", format_log_json(log).c_str());
        std::fflush(json_log);
      }
      interval_loss = interval_seconds = 0;
      interval_iters = 0;
    }
    if (data.valid && a.eval_iters > 0 && iteration % a.eval_interval == 0) {
      const double vl = evaluate(model, *data.valid, valid_consumed, a, mb);
      std::printf("%s\n", format_validation_line(strfmt("iteration {}", iteration), vl).c_str());
    }
    if (!a.save.empty() && a.save_interval > 0 && iteration % a.save_interval == 0) {
      save(a, model, iteration, consumed, tokenizer->eod());
      last_saved = iteration;
    }
  }
  if (!a.save.empty() && last_saved != iteration)
    save(a, model, iteration, consumed, tokenizer->eod());

  if (data.valid && a.eval_iters > 0) {
    const double vl = evaluate(model, *data.valid, valid_consumed, a, mb);
    std::printf("%s\n", format_validation_line("the end of training for val data", vl).c_str());
  }
  if (data.test && a.eval_iters > 0) {
    int64_t test_consumed = 0;
    const double tl = evaluate(model, *data.test, test_consumed, a, mb);
    std::printf("%s\n", format_validation_line("the end of training for test data", tl).c_str());
  }
  if (json_log) std::fclose(json_log);
  return 0;
}

}  // namespace mds::train
