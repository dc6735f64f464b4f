#include "mds/train/trainer.h"

#include <omp.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string_view>

#include "mds/ckpt/checkpoint_dir.h"
#include "mds/ckpt/hf_checkpoint.h"
#include "mds/core/error.h"
#include "mds/data/gpt_dataset.h"
#include "mds/data/indexed_dataset.h"
#include "mds/dist/launch_env.h"
#include "mds/dist/mpi_communicator.h"
#ifdef MDS_HAVE_NCCL
#include "mds/dist/nccl_communicator.h"
#endif
#include "mds/dist/topology.h"
#include "mds/launch/devices.h"
#include "mds/model/llama.h"
#include "mds/ops/backend.h"
#include "mds/ops/timed_backend.h"
#include "mds/optim/adamw.h"
#include "mds/optim/loss_scaler.h"
#include "mds/optim/lr_schedule.h"
#include "mds/parallel/grad_sync.h"
#include "mds/parallel/pipeline_schedule.h"
#include "mds/train/datasets.h"
#include "mds/train/memory_report.h"
#include "mds/train/metrics.h"
#include "mds/train/micro_batch.h"
#include "mds/train/parallel_context.h"
#include "mds/train/run_report.h"

namespace mds::train {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Megatron's timers line after the log line: milliseconds per iteration over the interval.
struct IntervalTimers {
  double forward_backward = 0, optimizer = 0;
  double comm_at_start[4] = {};  // tp, sp, pp, dp seconds when the interval began

  std::string line(ParallelContext& par, int64_t iters) {
    const dist::Group groups[4] = {dist::Group::tp, dist::Group::sp, dist::Group::pp,
                                   dist::Group::dp};
    const char* names[4] = {"tp-comm", "sp-comm", "pp-comm", "dp-comm"};
    char buf[128];
    std::snprintf(buf, sizeof buf, "time (ms) | forward-backward: %.2f | optimizer: %.2f",
                  forward_backward * 1e3 / double(iters), optimizer * 1e3 / double(iters));
    std::string s = buf;
    for (int i = 0; i < 4; ++i) {
      const double now = par.comm_seconds(groups[i]);
      std::snprintf(buf, sizeof buf, " | %s: %.2f", names[i],
                    (now - comm_at_start[i]) * 1e3 / double(iters));
      s += buf;
      comm_at_start[i] = now;
    }
    forward_backward = optimizer = 0;
    return s;
  }
};

// Setup (flags, files, layout) runs on every rank before any rank talks to another, so a
// failing rank cannot leave its peers waiting in a collective: all ranks then meet in this
// all-reduce (a healthy rank from train(), a failed one from run_training's handler) and learn
// the lowest failing rank, or -1.
int first_failed_rank(dist::Communicator& world, bool failed) {
  int32_t v = failed ? world.size() - world.rank() : 0;
  world.all_reduce(&v, 1, dist::ReduceOp::max);
  return v == 0 ? -1 : world.size() - v;
}

// Thrown on healthy ranks when a peer failed during setup: the peer reports, they exit 2.
struct PeerFailed {};

// Several GPU processes: each takes the GPU of its local rank (the launcher's), so a host
// needs a GPU per process there, and the build needs NCCL.
void check_one_gpu_per_process(const launch::DeviceInfo& device) {
  const char* backend = std::getenv("MDS_BACKEND");  // mds launch sets it for the ranks
  MDS_CHECK(!backend || std::string_view(backend) != "mpi",
            "MDS_BACKEND=mpi with several GPU processes: their device buffers move through NCCL "
            "(mds does not use CUDA-aware MPI); unset it or use MDS_BACKEND=nccl, or "
            "MDS_DEVICE=cpu to train on the CPUs over MPI");
#ifdef MDS_HAVE_NCCL
  const int per_host = dist::launcher_local_size();
  MDS_CHECK(per_host <= device.count,
            "{} processes on this host but {} GPUs visible: run one process per GPU (or check "
            "CUDA_VISIBLE_DEVICES)",
            per_host, device.count);
#else
  (void)device;
  MDS_FAIL(
      "several processes on GPUs need NCCL, which this build lacks (set NCCL_HOME and rebuild); "
      "run one process, or MDS_DEVICE=cpu for MPI on CPUs");
#endif
}

// The NCCL world over the MPI world's ranks, this rank on the GPU of its local rank
// (collective over the world; check_one_gpu_per_process has passed on every rank).
std::unique_ptr<dist::Communicator> make_device_world(dist::Communicator& world,
                                                      const launch::DeviceInfo& device) {
#ifdef MDS_HAVE_NCCL
  return dist::make_nccl_world(world, dist::launcher_local_rank() % device.count);
#else
  (void)world;
  (void)device;
  MDS_FAIL("this build has no NCCL");  // unreachable: check_one_gpu_per_process refused
#endif
}

// The element type of a model's weights and activations, as the banner names it.
template <typename Model>
constexpr model::Precision precision_of() {
  using E = typename Model::Element;
  return std::is_same_v<E, bf16>   ? model::Precision::bf16
         : std::is_same_v<E, fp16> ? model::Precision::fp16
                                   : model::Precision::fp32;
}
std::string precision_name(model::Precision p, const optim::LossScalerOptions& scaling) {
  switch (p) {
    case model::Precision::bf16:
      return "bf16 (fp32 master weights and gradients)";
    case model::Precision::fp16:
      return scaling.loss_scale > 0
                 ? strfmt("fp16 (fp32 master weights and gradients, loss scale {})",
                          scaling.loss_scale)
                 : strfmt("fp16 (fp32 master weights and gradients, dynamic loss scale from {})",
                          scaling.initial_scale);
    case model::Precision::fp32:
      break;
  }
  return "fp32";
}

// The model's activation slots and micro-batch shape on this rank.
model::BatchShape local_shape(const TrainArgs& a, ParallelContext& par) {
  const int64_t S = par.topology().sizes().sp, s = a.model.seq_length / S;
  return {a.micro_batch_size, s, par.topology().coords().sp * s};
}

// Micro-batches in flight on this rank's pipeline stage (the 1F1B schedule's slots).
int64_t activation_slots(const TrainArgs& a, ParallelContext& par) {
  return parallel::pipeline_slots(par.topology().coords().pp, par.topology().sizes().pp,
                                  a.num_micro_batches());
}

template <typename Model>
void print_banner(const TrainArgs& a, Model& m, optim::AdamW& optimizer, ParallelContext& par,
                  const launch::DeviceInfo& device, double peak_flops) {
  constexpr model::Precision precision = precision_of<Model>();
  const model::LlamaConfig& c = m.config();
  const dist::ParallelSizes& n = par.topology().sizes();
  std::printf(
      "> model: Llama, %lld layers, hidden %lld, ffn %lld, heads %lld (kv %lld), seq %lld, "
      "vocab %lld (padded %lld)\n",
      (long long)c.num_layers, (long long)c.hidden_size, (long long)c.ffn_hidden_size,
      (long long)c.num_attention_heads, (long long)c.kv_heads(), (long long)c.seq_length,
      (long long)c.vocab_size, (long long)c.padded_vocab_size);
  std::printf(
      "> parallel layout: %d processes = tensor %d x sequence %d x data %d x pipeline %d; rank 0 "
      "holds layers %lld-%lld\n",
      n.world(), n.tp, n.sp, n.dp, n.pp, (long long)m.shard().first_layer,
      (long long)(m.shard().first_layer + m.shard().layers(c) - 1));
  const std::string where = m.backend().device() == ops::Device::cpu
                                ? strfmt("CPU, {} threads", omp_get_max_threads())
                                : device.name;
  std::printf("> parameters: %.2fM (rank 0: %.2fM); %s on %s\n", model::ParamTable(c).total() / 1e6,
              m.table().total() / 1e6, precision_name(precision, a.loss_scaler).c_str(),
              where.c_str());
  std::printf(
      "> batch: micro %lld x %lld micro-batches x %lld data-parallel = global %lld sequences "
      "(%lld tokens)\n",
      (long long)a.micro_batch_size, (long long)a.num_micro_batches(), (long long)a.data_parallel,
      (long long)a.global_batch_size, (long long)(a.global_batch_size * c.seq_length));
  // Memory per rank of every stage from the shapes; rank 0's own buffers, allocated now
  // (prepare() takes every activation buffer a step uses), checked against its row.
  if (a.recompute.granularity != model::RecomputeGranularity::none)
    std::printf("> activation recomputation: %s\n", a.recompute.describe().c_str());
  if (a.attention == ops::AttentionBackend::unfused)
    std::printf("> attention: unfused (Megatron's plain attention; --attention-backend unfused)\n");
  const std::vector<StageMemory> stages = memory_per_stage(
      c, n.tp, n.sp, n.pp, a.micro_batch_size, a.num_micro_batches(), a.recompute, precision);
  std::fputs(format_memory_table(stages).c_str(), stdout);
  m.prepare(local_shape(a, par), int(activation_slots(a, par)));
  const int64_t adam_bytes = optimizer.allocated_bytes();
  const MemoryReport mine = measured_memory(m, adam_bytes);
  const int64_t want = stages[size_t(par.topology().coords().pp)].memory.total();
  std::printf("> rank 0 allocated %.1f MiB after prepare(), %s\n", double(mine.total()) / 1048576.0,
              mine.total() == want ? "as its row says" : "NOT as its row says (a bug)");
  if (peak_flops > 0)
    std::printf("> MFU: achieved FLOP/s per rank over a peak of %.3f TFLOP/s per device\n",
                peak_flops / 1e12);
  else
    std::printf("> MFU: not reported (peak FLOP/s of this device unknown: pass --peak-tflops)\n");
}

// One training step's forward and backward passes over this rank's micro-batches, in the
// 1F1B order (parallel/pipeline_schedule.h). Returns the step's loss as every rank logs it;
// the gradients are those of loss_scale times it (fp16's loss scaling; 1 otherwise).
template <typename Model>
double train_step(Model& model, const data::SampleDataset& dataset, int64_t consumed,
                  const TrainArgs& a, MicroBatch& mb, ParallelContext& par, double loss_scale) {
  const int64_t M = a.num_micro_batches();
  const int64_t slots = activation_slots(a, par);
  const model::BatchShape shape = local_shape(a, par);
  model.prepare(shape, int(slots));
  double loss = 0;
  parallel::StageWork<typename Model::Element> work;
  using Elem = typename Model::Element;
  work.forward = [&](int64_t k, const Elem* input) {
    par.read_micro_batch(dataset, consumed + par.micro_batch_offset(k, a.micro_batch_size),
                         a.micro_batch_size, mb);
    const Elem* out = model.forward(int(k % slots), mb.tokens.data(), input);
    if (par.last_stage())
      loss += model.loss_and_grad(int(k % slots), mb.targets.data(), float(loss_scale) / float(M)) /
              double(M);
    return out;
  };
  // The gradients are averaged over the sequence-data group while the step's last backward
  // runs (buckets start as they become final), so every rank of a shard takes the same step.
  parallel::GradientAverager averager(par.device_group(dist::Group::sdp), model.grads().data(),
                                      int64_t(model.grads().size()), a.ddp_bucket_size);
  const typename Model::GradsFinal grads_final = [&](int64_t begin) { averager.ready_from(begin); };
  work.backward = [&](int64_t k, const Elem* d_output) {
    return model.backward(int(k % slots), d_output, k == M - 1 ? grads_final : nullptr);
  };
  work.input_buffer = model.stage_input();
  work.d_output_buffer = model.stage_d_output();
  parallel::run_one_f_one_b(par.device_group(dist::Group::pp), M, shape.n() * a.model.hidden_size,
                            work);
  averager.finish();
  return par.reduce_loss(loss);
}

// Mean loss over eval_iters global batches of `dataset`, from `consumed` onwards. Each DP rank
// evaluates its share of every batch (as in training); equal shares, so the mean of the
// ranks' means is the mean. evaluate leaves its traffic out of the per-iteration byte counts.
template <typename Model>
double evaluate_counted(Model& model, const data::SampleDataset& dataset, int64_t& consumed,
                        const TrainArgs& a, MicroBatch& mb, ParallelContext& par) {
  const model::BatchShape shape = local_shape(a, par);
  model.prepare(shape, 1);
  double sum = 0;
  int64_t count = 0;
  for (int64_t it = 0; it < a.eval_iters; ++it, consumed += a.global_batch_size)
    parallel::run_forward_only<typename Model::Element>(
        par.device_group(dist::Group::pp), a.num_micro_batches(), shape.n() * a.model.hidden_size,
        [&](int64_t k, const typename Model::Element* input) {
          par.read_micro_batch(dataset, consumed + par.micro_batch_offset(k, a.micro_batch_size),
                               a.micro_batch_size, mb);
          const auto* out = model.forward(0, mb.tokens.data(), input);
          if (par.last_stage()) sum += model.loss(0, mb.targets.data());
          ++count;
          return out;
        },
        model.stage_input());
  return par.reduce_loss(sum / double(count));
}

template <typename Model>
double evaluate(Model& model, const data::SampleDataset& dataset, int64_t& consumed,
                const TrainArgs& a, MicroBatch& mb, ParallelContext& par) {
  return par.uncounted([&] { return evaluate_counted(model, dataset, consumed, a, mb, par); });
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

// A model's weights from fp32 host values: an fp32 model takes them as they are; a 16-bit model
// takes their rounding, and the optimizer the values themselves as its master.
template <typename Model>
void set_weights(Model& m, optim::AdamW& optimizer, const std::vector<float>& host) {
  if constexpr (precision_of<Model>() == model::Precision::fp32) {
    m.params().upload(host.data(), int64_t(host.size()));
  } else {
    const std::vector<typename Model::Element> rounded(host.begin(), host.end());
    m.params().upload(rounded.data(), int64_t(rounded.size()));
    optimizer.master().upload(host.data(), int64_t(host.size()));
  }
}

// This rank's weights in fp32 on the host: the model's, or a 16-bit model's fp32 master.
template <typename Model>
std::vector<float> fp32_weights(const Model& m, const optim::AdamW& optimizer) {
  if constexpr (precision_of<Model>() == model::Precision::fp32)
    return m.params().to_host();
  else
    return optimizer.master().to_host();
}

// --load: weights from a checkpoint folder or a plain Hugging Face folder. RoPE theta and the
// norm epsilon come from its config.json. A checkpoint written by mds also restores the
// iteration and consumed samples (so the data stream and LR schedule continue) unless
// --finetune; the optimizer's moments start fresh (full resume comes with the resume work).
// Every rank reads the whole model and keeps its slices: a checkpoint holds logical tensors,
// so it loads under any parallel layout.
template <typename Model>
ckpt::TrainState load_weights(const TrainArgs& a, Model& m, optim::AdamW& optimizer) {
  const std::string dir = ckpt::resolve_load_dir(a.load);
  std::vector<float> host(static_cast<size_t>(m.params().size()));
  if (m.shard().whole()) {
    ckpt::load_hf_checkpoint(dir, m.config(), m.table(), host.data());
  } else {
    const model::ParamTable full_table(m.config());
    std::vector<float> full(full_table.total());
    ckpt::load_hf_checkpoint(dir, m.config(), full_table, full.data());
    host = ParallelContext::take_slices(full_table, full.data(), m.table());
  }
  set_weights(m, optimizer, host);
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

// The trainer's scalars a checkpoint keeps beside the weights (TrainState::optimizer): the
// LR schedule's samples (behind the consumed samples by the skipped steps) and, in fp16, the
// loss scaler, so that a resumed run continues with the same scale.
nlohmann::json optimizer_state(const optim::LossScaler& scaler, bool fp16_run,
                               const optim::LRSchedule& schedule) {
  nlohmann::json j = {{"lr_schedule_samples", schedule.num_samples()}};
  if (fp16_run) {
    const optim::LossScaler::State& s = scaler.state();
    j["loss_scale"] = s.scale;
    j["loss_scale_growth_tracker"] = s.growth_tracker;
    j["loss_scale_hysteresis_tracker"] = s.hysteresis_tracker;
  }
  return j;
}

// The schedule continues from the checkpoint's samples (its consumed samples when it has none).
void restore_optimizer_state(const ckpt::TrainState& start, optim::LossScaler& scaler,
                             optim::LRSchedule& schedule) {
  const nlohmann::json& j = start.optimizer;
  schedule.set_num_samples(j.contains("lr_schedule_samples") &&
                                   j["lr_schedule_samples"].is_number_integer()
                               ? j["lr_schedule_samples"].get<int64_t>()
                               : start.consumed_samples);
  if (!scaler.dynamic() || !j.contains("loss_scale")) return;  // fp16 dynamic from fp16 only
  optim::LossScaler::State s;
  s.scale = j.value("loss_scale", scaler.scale());
  s.growth_tracker = j.value("loss_scale_growth_tracker", int64_t{0});
  s.hysteresis_tracker = j.value("loss_scale_hysteresis_tracker", int64_t{1});
  MDS_CHECK(s.scale > 0 && std::isfinite(s.scale),
            "the checkpoint's loss scale {} is not a positive number", s.scale);
  scaler.restore(s);
  std::printf("> continuing with loss scale %.1f\n", s.scale);
}

// Collective: the shards are gathered on world rank 0, which writes the whole model (fp32: the
// master weights of a 16-bit model) and the trainer's scalars.
template <typename Model>
void save(const TrainArgs& a, const Model& m, const optim::AdamW& optimizer, ParallelContext& par,
          int64_t iteration, int64_t consumed, int32_t eod, const nlohmann::json& scalars) {
  const bool whole = m.shard().whole();
  const model::ParamTable full_table(m.config());
  std::vector<float> local = fp32_weights(m, optimizer);
  const std::vector<float> full =
      whole ? std::move(local) : par.gather_model(local, m.config(), full_table);
  if (par.world().rank() != 0) return;
  ckpt::TrainState state;
  state.iteration = iteration;
  state.consumed_samples = consumed;
  state.args = {{"command_line", a.command_line}, {"seed", a.seed}};
  state.optimizer = scalars;
  ckpt::HfSaveOptions options;
  options.bos_token_id = options.eos_token_id = eod;
  const std::string dir = ckpt::save_checkpoint(
      a.save, state, m.config(), whole ? m.table() : full_table, full.data(), options);
  std::printf("> saved checkpoint at iteration %lld to %s\n", (long long)iteration, dir.c_str());
  std::fflush(stdout);
}

// Rank 0's peak of the model's backend memory beside the banner's row for it (on the CPU they
// are equal: every buffer is in the table), printed and written to --log-json.
template <typename Model>
void report_peak_memory(const TrainArgs& a, const Model& m, ParallelContext& par,
                        RunReport& report) {
  const dist::ParallelSizes& n = par.topology().sizes();
  const int64_t banner =
      memory_per_stage(m.config(), n.tp, n.sp, n.pp, a.micro_batch_size, a.num_micro_batches(),
                       a.recompute, precision_of<Model>())[size_t(par.topology().coords().pp)]
          .memory.total();
  const ops::Backend::MemoryStats mem = m.backend().memory_stats();
  const char* device = ops::device_name(m.backend().device());
  std::printf("> memory: peak %.1f MiB of %s buffers on rank 0 (the banner's row: %.1f MiB)\n",
              double(mem.peak) / 1048576.0, device, double(banner) / 1048576.0);
  report.json_line(strfmt(R"({"peak_memory_bytes": {}, "device": "{}", "banner_bytes": {}})",
                          mem.peak, device, banner));
}

}  // namespace

namespace {

// The run on one rank, of a model whose weights and activations are Elem (float, or bf16 /
// fp16: Megatron's mixed precision). past_setup turns true once every rank has finished setup.
template <typename Elem>
int train_as(TrainArgs a, dist::Communicator& world, bool& past_setup) {
  ops::attention_backend() = a.attention;  // before any kernel runs
  // Only world rank 0 prints (banner, log lines, summaries); errors still reach stderr.
  if (world.rank() != 0 && !std::freopen("/dev/null", "w", stdout)) std::fclose(stdout);
  const auto tokenizer = data::build_tokenizer(a.tokenizer);
  a.model.vocab_size = tokenizer->vocab_size();
  if (!a.load.empty()) apply_checkpoint_config(a);
  a.model.finalize(a.make_vocab_size_divisible_by, a.tensor_parallel);
  const model::LlamaConfig& mc = a.model;
  const dist::ParallelSizes sizes = dist::make_parallel_sizes(
      world.size(), int(a.tensor_parallel), int(a.pipeline_parallel), int(a.sequence_parallel),
      {mc.num_attention_heads, mc.kv_heads(), mc.ffn_hidden_size, mc.seq_length, mc.num_layers});
  set_data_parallel(a, sizes.dp);
  // The device: a GPU when this build has the CUDA backend and one is visible (MDS_DEVICE=cpu
  // keeps the CPU); several GPU processes take one GPU each.
  const launch::DeviceInfo device = launch::detect_devices();
  const bool on_gpu = device.kind == launch::DeviceKind::cuda;
  if (on_gpu && world.size() > 1) check_one_gpu_per_process(device);
  MDS_CHECK(a.recompute.granularity != model::RecomputeGranularity::full ||
                a.recompute.num_layers <= mc.num_layers / sizes.pp,
            "--recompute-num-layers ({}) exceeds the layers of a pipeline stage ({} / {} stages)",
            a.recompute.num_layers, mc.num_layers, sizes.pp);
  // Every rank agrees the layout is valid before the world is split into its groups.
  if (first_failed_rank(world, false) >= 0) throw PeerFailed{};
  // Device memory moves through NCCL between GPU processes (the device groups), host values
  // through MPI (parallel_context.h). Declared first: the groups split from it go first.
  const std::unique_ptr<dist::Communicator> device_world =
      on_gpu && world.size() > 1 ? make_device_world(world, device) : nullptr;
  ParallelContext par(world, sizes, a.model, device_world.get());
  ops::Backend* device_backend = &ops::backend_for(on_gpu ? ops::Device::cuda : ops::Device::cpu);
  std::optional<ops::TimedBackend> timing;  // --timing-log-level 2: every kernel timed
  if (a.timing_log_level >= 2) device_backend = &timing.emplace(*device_backend);
  ops::Backend& backend = *device_backend;
  // Leaves evaluation and checkpoint writes out of the kernel table.
  auto untimed = [&](auto&& f) {
    if (timing) timing->pause(true);
    f();
    if (timing) timing->pause(false);
  };
  model::LlamaModelT<Elem> model(a.model, par.shard(), par.model_comm(), a.recompute, backend);
  model.init_weights(a.seed);
  optim::AdamW optimizer(model.table(), a.adam, backend);
  if constexpr (!std::is_same_v<Elem, float>) optimizer.init_master(model.params().data());
  const double peak = launch::peak_flops(device, omp_get_max_threads(), a.peak_tflops);
  print_banner(a, model, optimizer, par, device, peak);
  const ckpt::TrainState start =
      a.load.empty() ? ckpt::TrainState{} : load_weights(a, model, optimizer);
  // Rank 0 builds the index maps; the others wait for its cache files and load them.
  DataOptions data_opts = data_options(a);
  data_opts.role =
      world.rank() == 0 ? data::IndexCache::Role::builder : data::IndexCache::Role::follower;
  Datasets data = build_datasets(data_opts);
  std::fputs(data.summary.table().c_str(), stdout);

  optim::LRSchedule schedule(schedule_options(a));
  // fp16 scales the loss; the other precisions never do (scale 1, no step skipped).
  constexpr bool fp16_run = std::is_same_v<Elem, fp16>;
  optim::LossScaler scaler(fp16_run ? a.loss_scaler : optim::LossScalerOptions{.loss_scale = 1});
  restore_optimizer_state(start, scaler, schedule);
  RunReport report(a, world.rank() == 0, peak, world.size(), start.iteration);
  report.json_line(data.summary.json());  // first line: the data table

  if (first_failed_rank(world, false) >= 0) throw PeerFailed{};
  past_setup = true;

  const int64_t gbs = a.global_batch_size;
  const double flops = flops_per_iteration(model.config(), gbs);
  MicroBatch mb;
  int64_t consumed = start.consumed_samples, iteration = start.iteration, valid_consumed = 0;
  int64_t last_saved = -1;
  double interval_loss = 0, interval_seconds = 0;
  IntervalTimers timers;
  int64_t interval_iters = 0, interval_skipped = 0;
  const int tp_rank = par.topology().coords().tp;

  report.start();
  if (timing) timing->reset();  // from the first training step on
  while (iteration < a.train_iters) {
    const auto start = Clock::now();
    model.zero_grads();
    const double loss_scale = scaler.scale();
    const double loss = train_step(model, *data.train, consumed, a, mb, par, loss_scale);
    timers.forward_backward += seconds_since(start);
    MDS_CHECK(std::isfinite(loss),
              "lm loss is {} at iteration {}: training diverged; lower --lr, raise "
              "--lr-warmup-iters or check the data (no checkpoint was written for it)",
              loss, iteration + 1);
    const auto optimizer_start = Clock::now();
    // The norm of the scaled gradients, over every shard: inf or NaN exactly when some
    // gradient is (the squares add in double, which no finite fp32 gradient overflows), so it
    // is also the overflow check of loss scaling, on every rank alike, at no extra cost.
    const double scaled_norm = parallel::sharded_grad_norm(model.table(), model.grads().data(),
                                                           tp_rank, par.group(dist::Group::tp),
                                                           par.group(dist::Group::pp), backend);
    const bool overflow = !std::isfinite(scaled_norm);
    MDS_CHECK(fp16_run || !overflow,
              "the gradient norm is {} at iteration {}: training diverged; lower --lr, raise "
              "--lr-warmup-iters or check the data (no checkpoint was written for it)",
              scaled_norm, iteration + 1);
    scaler.update(overflow);
    // An overflowing fp16 step is skipped: weights, moments and the LR schedule stay put.
    const double grad_norm = overflow ? 0 : scaled_norm / loss_scale;
    if (!overflow) {
      optimizer.step(model.params().data(), model.grads().data(), schedule.lr(), grad_norm,
                     1.0 / loss_scale);
      schedule.step(gbs);
    }
    timers.optimizer += seconds_since(optimizer_start);
    consumed += gbs;
    ++iteration;
    const double seconds = seconds_since(start);
    if (!overflow) interval_loss += loss;  // Megatron averages the applied steps' losses
    interval_skipped += overflow ? 1 : 0;
    interval_seconds += seconds;
    ++interval_iters;
    report.iteration(iteration, consumed, loss, schedule.lr(), scaler.scale(), grad_norm, seconds);

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
      const int64_t applied = interval_iters - interval_skipped;
      log.lm_loss = applied > 0 ? interval_loss / double(applied) : 0;
      log.loss_scale = scaler.scale();
      log.grad_norm = grad_norm;
      log.skipped_iterations = interval_skipped;
      log.seq_length = a.model.seq_length;
      log.samples_per_second = double(gbs) / per_iter;
      log.tokens_per_gpu_per_second =
          log.samples_per_second * double(a.model.seq_length) / double(world.size());
      log.tflops = flops / per_iter / 1e12 / double(world.size());
      report.log(log);
      std::printf("%s\n", timers.line(par, interval_iters).c_str());
      std::fflush(stdout);
      interval_loss = interval_seconds = 0;
      interval_iters = interval_skipped = 0;
    }
    if (data.valid && a.eval_iters > 0 && iteration % a.eval_interval == 0) {
      double vl = 0;
      untimed([&] { vl = evaluate(model, *data.valid, valid_consumed, a, mb, par); });
      report.evaluation("validation", strfmt("iteration {}", iteration), iteration, consumed, vl);
    }
    if (!a.save.empty() && a.save_interval > 0 && iteration % a.save_interval == 0) {
      untimed([&] {
        save(a, model, optimizer, par, iteration, consumed, tokenizer->eod(),
             optimizer_state(scaler, fp16_run, schedule));
      });
      last_saved = iteration;
    }
  }
  if (timing) {
    timing->pause(true);
    std::fputs(timing->report(iteration - start.iteration).c_str(), stdout);
  }
  report_peak_memory(a, model, par, report);
  std::fputs(par.comm_summary(iteration - start.iteration, a.num_micro_batches(),
                              a.micro_batch_size, model)
                 .c_str(),
             stdout);
  if (!a.save.empty() && last_saved != iteration)
    save(a, model, optimizer, par, iteration, consumed, tokenizer->eod(),
         optimizer_state(scaler, fp16_run, schedule));

  if (data.valid && a.eval_iters > 0) {
    const double vl = evaluate(model, *data.valid, valid_consumed, a, mb, par);
    report.evaluation("validation", "the end of training for val data", iteration, consumed, vl);
  }
  if (data.test && a.eval_iters > 0) {
    int64_t test_consumed = 0;
    const double tl = evaluate(model, *data.test, test_consumed, a, mb, par);
    report.evaluation("test", "the end of training for test data", iteration, consumed, tl);
  }
  report.finish(iteration, flops);
  world.barrier();  // checkpoints written by rank 0 are complete when any rank returns
  return 0;
}

}  // namespace

int run_training(TrainArgs a) {
  std::unique_ptr<dist::Communicator> world = dist::init_world();
  bool past_setup = false;
  try {
    int rc = 0;
    switch (a.precision) {
      case model::Precision::bf16:
        rc = train_as<bf16>(std::move(a), *world, past_setup);
        break;
      case model::Precision::fp16:
        rc = train_as<fp16>(std::move(a), *world, past_setup);
        break;
      case model::Precision::fp32:
        rc = train_as<float>(std::move(a), *world, past_setup);
        break;
    }
    world.reset();  // MPI_Finalize on every rank
    return rc;
  } catch (const PeerFailed&) {
    world->barrier();  // where the failed ranks wait after reporting
    world.reset();
    return 2;
  } catch (const std::exception& e) {
    if (world->size() == 1) throw;  // main reports it
    if (past_setup)  // the others may be inside a collective: take the whole job down
      world->abort(strfmt("mds train: error on rank {}: {}", world->rank(), e.what()));
    // One line from the lowest failing rank, as main prints it, written before MPI_Finalize:
    // mpirun may kill this process as soon as a peer exits with an error.
    const bool user_error = dynamic_cast<const UserError*>(&e) != nullptr;
    if (first_failed_rank(*world, true) == world->rank()) {
      std::fprintf(stderr, "mds train: %s%s\n", user_error ? "error: " : "", e.what());
      std::fflush(stderr);
    }
    world->barrier();
    world.reset();
    return user_error ? 2 : 1;
  }
}

}  // namespace mds::train
