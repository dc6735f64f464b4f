#include "mds/train/run_report.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "mds/core/error.h"
#include "mds/train/loss_plot.h"
#include "mds/train/terminal_plot.h"

namespace mds::train {
namespace {

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// The PNG goes beside the logs: --plot, else beside --log-json (run.jsonl -> run.loss.png),
// else in --tensorboard-dir, else in --save; none without any of them.
std::string default_plot_path(const TrainArgs& a) {
  namespace fs = std::filesystem;
  if (!a.plot.empty()) return a.plot;
  if (!a.log_json.empty()) return fs::path(a.log_json).replace_extension("loss.png").string();
  if (!a.tensorboard_dir.empty()) return (fs::path(a.tensorboard_dir) / "loss.png").string();
  if (!a.save.empty()) return (fs::path(a.save) / "loss.png").string();
  return "";
}

}  // namespace

RunReport::RunReport(const TrainArgs& a, bool rank0, double peak_flops, int world_size,
                     int64_t start_iteration)
    : rank0_(rank0),
      peak_flops_(peak_flops),
      world_size_(world_size),
      seq_(a.model.seq_length),
      gbs_(a.global_batch_size),
      train_iters_(a.train_iters),
      tb_interval_(a.tensorboard_log_interval),
      start_iteration_(start_iteration),
      plot_(default_plot_path(a)) {
  if (!rank0_) return;
  if (!a.log_json.empty()) {
    const auto parent = std::filesystem::path(a.log_json).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    json_.reset(std::fopen(a.log_json.c_str(), "w"));
    MDS_CHECK(json_, "cannot write --log-json {}: check the path is writable", a.log_json);
  }
  if (!a.tensorboard_dir.empty()) {
    tb_ = std::make_unique<TensorBoardWriter>(a.tensorboard_dir);
    std::printf("> TensorBoard events: %s\n", tb_->path().c_str());
  }
  if (!plot_.empty()) {  // a PNG that cannot be written is found now, not after the run
    const auto dir = std::filesystem::absolute(plot_).parent_path();
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    MDS_CHECK(::access(dir.c_str(), W_OK) == 0,
              "cannot write the loss plot {}: its folder is not writable (set --plot FILE)", plot_);
  }
  loop_start_ = now_seconds();
}

void RunReport::json_line(const std::string& line) {
  if (!json_) return;
  std::fprintf(json_.get(), "%s\n", line.c_str());
  std::fflush(json_.get());
}

void RunReport::start() {
  loop_start_ = now_seconds();
}

void RunReport::scalar3(const std::string& tag, double value, int64_t iteration, int64_t samples) {
  tb_->add_scalar(tag, value, iteration);
  tb_->add_scalar(tag + " vs samples", value, samples);
  tb_->add_scalar(tag + " vs tokens", value, samples * seq_);
}

void RunReport::iteration(int64_t iteration, int64_t consumed_samples, double loss, double lr,
                          double loss_scale, double grad_norm, double seconds) {
  if (!rank0_) return;
  train_seconds_ += seconds;
  history_.train.push_back({iteration, loss});
  if (!tb_ || iteration % tb_interval_ != 0) return;
  const int64_t tokens = consumed_samples * seq_;
  tb_->add_scalar("steps-vs-samples/y=steps,x=samples", double(iteration), consumed_samples);
  tb_->add_scalar("steps-vs-samples/y=samples,x=steps", double(consumed_samples), iteration);
  tb_->add_scalar("steps-vs-tokens/y=steps,x=tokens", double(iteration), tokens);
  tb_->add_scalar("steps-vs-tokens/y=tokens,x=steps", double(tokens), iteration);
  scalar3("learning-rate/learning-rate", lr, iteration, consumed_samples);
  scalar3("lm-loss-training/lm loss", loss, iteration, consumed_samples);
  scalar3("loss-scale/loss-scale", loss_scale, iteration, consumed_samples);
  scalar3("grad-norm/grad-norm", grad_norm, iteration, consumed_samples);
}

void RunReport::log(IterationLog& l) {
  if (!rank0_) return;
  l.mfu = mfu_percent(l.tflops, peak_flops_);
  const int64_t done = l.iteration - start_iteration_;
  if (done > 0)
    l.eta_seconds =
        double(train_iters_ - l.iteration) * (now_seconds() - loop_start_) / double(done);
  last_logged_loss_ = l.lm_loss;
  std::printf("%s\n", format_log_line(l).c_str());
  json_line(format_log_json(l));
  if (!tb_) return;
  const double seconds = l.elapsed_ms_per_iteration / 1e3;
  scalar3("iteration-time/iteration-time", seconds, l.iteration, l.consumed_samples);
  tb_->add_scalar("throughput/samples_per_sec", l.samples_per_second, l.iteration);
  tb_->add_scalar("throughput/tokens_per_sec", l.samples_per_second * double(seq_), l.iteration);
  tb_->add_scalar("throughput/tokens_per_gpu_per_sec", l.tokens_per_gpu_per_second, l.iteration);
  tb_->add_scalar("throughput/tflops-lm", l.tflops, l.iteration);
  if (l.mfu >= 0) tb_->add_scalar("throughput/MFU", l.mfu, l.iteration);
}

void RunReport::evaluation(const std::string& split, const std::string& where, int64_t iteration,
                           int64_t consumed_samples, double loss) {
  if (!rank0_) return;
  std::printf("%s\n", format_validation_line(where, loss).c_str());
  const double ppl = std::exp(std::min(20.0, loss));
  nlohmann::ordered_json j, line;
  j["at"] = where;
  j["iteration"] = iteration;
  j["consumed_samples"] = consumed_samples;
  j["consumed_tokens"] = consumed_samples * seq_;
  j["lm_loss"] = loss;
  j["ppl"] = ppl;
  line[split] = j;
  json_line(line.dump());
  if (split == "validation") {
    last_valid_loss_ = loss;
    history_.valid.push_back({iteration, loss});
  }
  if (!tb_) return;
  scalar3("lm-loss-validation/lm loss " + split, loss, iteration, consumed_samples);
  scalar3("lm-loss-validation/lm loss " + split + " ppl", ppl, iteration, consumed_samples);
}

RunSummary RunReport::finish(int64_t iteration, double flops_per_iteration) {
  RunSummary s;
  if (!rank0_) return s;
  s.first_iteration = start_iteration_;
  s.last_iteration = iteration;
  const int64_t done = iteration - start_iteration_;
  s.tokens = done * gbs_ * seq_;
  s.wall_seconds = now_seconds() - loop_start_;
  s.train_seconds = train_seconds_;
  if (train_seconds_ > 0) {
    s.tokens_per_second = double(s.tokens) / train_seconds_;
    s.tflops = flops_per_iteration * double(done) / train_seconds_ / 1e12 / double(world_size_);
  }
  s.mfu = mfu_percent(s.tflops, peak_flops_);
  s.final_train_loss = last_logged_loss_;
  s.final_valid_loss = last_valid_loss_;
  std::fputs(format_summary(s).c_str(), stdout);
  json_line(summary_json(s));
  std::fputs(terminal_plot(history_).c_str(), stdout);
  if (!plot_.empty() && !history_.train.empty()) {
    try {  // the run is done and saved: a failed plot is a warning, not a failed run
      write_loss_png(plot_, history_);
      std::printf("> loss curve: %s\n", plot_.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mds train: warning: %s\n", e.what());
    }
  }
  std::fflush(stdout);
  return s;
}

}  // namespace mds::train
