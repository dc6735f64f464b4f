#include "mds/train/metrics.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace mds::train {
namespace {

std::string printf_string(const char* fmt, auto... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, args...);
  return buf;
}

}  // namespace

std::string format_log_line(const IterationLog& l) {
  std::string s;
  s += printf_string(" iteration=%8lld/%8lld |", (long long)l.iteration, (long long)l.train_iters);
  s += printf_string(" consumed_samples=%12lld |", (long long)l.consumed_samples);
  s += printf_string(" consumed_tokens=%12lld |", (long long)l.consumed_tokens);
  s += printf_string(" elapsed_time_per_iteration_ms=%.1f |", l.elapsed_ms_per_iteration);
  s += printf_string(" learning_rate=%.6g |", l.learning_rate);
  s += printf_string(" global_batch_size=%5lld |", (long long)l.global_batch_size);
  if (l.lm_loss > 0) s += printf_string(" lm loss=%.6f |", l.lm_loss);
  s += printf_string(" loss_scale=%.1f |", l.loss_scale);
  s += printf_string(" grad_norm=%.3f |", l.grad_norm);
  s += printf_string(" actual_seqlen=%5lld |", (long long)l.seq_length);
  s += printf_string(" number_of_skipped_iterations=%3lld |", (long long)l.skipped_iterations);
  s += printf_string(" number_of_nan_iterations=%3lld |", (long long)l.nan_iterations);
  s += printf_string(" samples_per_second=%.3f |", l.samples_per_second);
  s += printf_string(" tokens_per_gpu_per_second_tgs=%.3f |", l.tokens_per_gpu_per_second);
  s += printf_string(" TFLOPs=%.2f |", l.tflops);
  if (l.mfu >= 0) s += printf_string(" MFU=%.2f%% |", l.mfu);
  if (l.eta_seconds >= 0) s += " ETA=" + format_duration(l.eta_seconds) + " |";
  return s;
}

std::string format_log_json(const IterationLog& l) {
  nlohmann::ordered_json j;
  j["iteration"] = l.iteration;
  j["train_iters"] = l.train_iters;
  j["consumed_samples"] = l.consumed_samples;
  j["consumed_tokens"] = l.consumed_tokens;
  j["elapsed_time_per_iteration_ms"] = l.elapsed_ms_per_iteration;
  j["learning_rate"] = l.learning_rate;
  j["global_batch_size"] = l.global_batch_size;
  j["lm_loss"] = l.lm_loss;
  j["loss_scale"] = l.loss_scale;
  j["grad_norm"] = l.grad_norm;
  j["actual_seqlen"] = l.seq_length;
  j["number_of_skipped_iterations"] = l.skipped_iterations;
  j["number_of_nan_iterations"] = l.nan_iterations;
  j["samples_per_second"] = l.samples_per_second;
  j["tokens_per_gpu_per_second_tgs"] = l.tokens_per_gpu_per_second;
  j["TFLOPs"] = l.tflops;
  j["MFU"] = l.mfu >= 0 ? nlohmann::json(l.mfu) : nlohmann::json(nullptr);
  j["ETA"] =
      l.eta_seconds >= 0 ? nlohmann::json(format_duration(l.eta_seconds)) : nlohmann::json(nullptr);
  j["eta_seconds"] = l.eta_seconds >= 0 ? nlohmann::json(l.eta_seconds) : nlohmann::json(nullptr);
  return j.dump();
}

std::string format_validation_line(const std::string& where, double loss) {
  const double ppl = std::exp(std::min(20.0, loss));
  return printf_string(" validation loss at %s | lm loss value=%.6f | lm loss PPL=%.6f |",
                       where.c_str(), loss, ppl);
}

std::string format_duration(double seconds) {
  const long long t = std::llround(std::max(0.0, seconds));
  return printf_string("%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
}

double mfu_percent(double tflops_per_device, double peak_flops) {
  return peak_flops > 0 ? tflops_per_device * 1e12 / peak_flops * 100.0 : -1.0;
}

double flops_per_iteration(const model::LlamaConfig& c, int64_t global_batch_size) {
  const double B = double(global_batch_size), s = double(c.seq_length), L = double(c.num_layers),
               h = double(c.hidden_size);
  const double ffn = double(c.ffn_hidden_size), kv = double(c.kv_heads()),
               heads = double(c.num_attention_heads), vpad = double(c.padded_vocab_size);
  return 12.0 * B * s * L * h * h *
         (1.0 + ffn / h * 1.5 + kv / heads + s / h + vpad / (2.0 * L * h));
}

}  // namespace mds::train
