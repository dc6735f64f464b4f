// The log line, JSON line and validation line match Megatron-DeepSpeed's format exactly (plus
// our MFU and ETA fields at the end); the FLOPs formula matches Megatron's for a known
// configuration.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "mds/train/metrics.h"

using namespace mds::train;

namespace {
IterationLog sample_log() {
  IterationLog l;
  l.iteration = 10;
  l.train_iters = 100;
  l.consumed_samples = 80;
  l.consumed_tokens = 20480;
  l.elapsed_ms_per_iteration = 123.44;
  l.learning_rate = 3e-4;
  l.global_batch_size = 8;
  l.lm_loss = 7.1234564;
  l.grad_norm = 1.2344;
  l.seq_length = 256;
  l.samples_per_second = 64.8;
  l.tokens_per_gpu_per_second = 16588.8;
  l.tflops = 0.1234;
  return l;
}
}  // namespace

TEST(Metrics, LogLineMatchesMegatronDeepSpeedFormat) {
  EXPECT_EQ(format_log_line(sample_log()),
            " iteration=      10/     100 | consumed_samples=          80 |"
            " consumed_tokens=       20480 | elapsed_time_per_iteration_ms=123.4 |"
            " learning_rate=0.0003 | global_batch_size=    8 | lm loss=7.123456 |"
            " loss_scale=1.0 | grad_norm=1.234 | actual_seqlen=  256 |"
            " number_of_skipped_iterations=  0 | number_of_nan_iterations=  0 |"
            " samples_per_second=64.800 | tokens_per_gpu_per_second_tgs=16588.800 |"
            " TFLOPs=0.12 |");
}

TEST(Metrics, LogLineEndsWithMfuAndEtaWhenKnown) {
  IterationLog l = sample_log();
  l.mfu = 3.14159;
  l.eta_seconds = 3725.4;  // 1 h 2 min 5.4 s
  const std::string line = format_log_line(l);
  EXPECT_EQ(line.substr(line.find(" TFLOPs=")), " TFLOPs=0.12 | MFU=3.14% | ETA=1:02:05 |");
  l.mfu = -1;  // unknown peak: the field is left out, the rest stays
  EXPECT_EQ(format_log_line(l).substr(line.find(" TFLOPs=")), " TFLOPs=0.12 | ETA=1:02:05 |");
}

TEST(Metrics, DurationIsHoursMinutesSeconds) {
  EXPECT_EQ(format_duration(0), "0:00:00");
  EXPECT_EQ(format_duration(59.4), "0:00:59");
  EXPECT_EQ(format_duration(59.6), "0:01:00");
  EXPECT_EQ(format_duration(3600 * 27 + 61), "27:01:01");
  EXPECT_EQ(format_duration(-5), "0:00:00");
}

TEST(Metrics, MfuIsAchievedOverPeakInPercent) {
  EXPECT_DOUBLE_EQ(mfu_percent(0.5, 2e12), 25.0);      // 0.5 TFLOP/s of a 2 TFLOP/s device
  EXPECT_DOUBLE_EQ(mfu_percent(494.5, 989e12), 50.0);  // half an H100's bf16 peak
  EXPECT_EQ(mfu_percent(1.0, 0), -1);                  // peak unknown
}

TEST(Metrics, JsonLineCarriesTheSameNumbers) {
  const auto j = nlohmann::json::parse(format_log_json(sample_log()));
  EXPECT_EQ(j["iteration"], 10);
  EXPECT_EQ(j["consumed_tokens"], 20480);
  EXPECT_DOUBLE_EQ(j["lm_loss"].get<double>(), 7.1234564);
  EXPECT_DOUBLE_EQ(j["learning_rate"].get<double>(), 3e-4);
  EXPECT_DOUBLE_EQ(j["TFLOPs"].get<double>(), 0.1234);
  EXPECT_TRUE(j["MFU"].is_null());  // unknown: null, never a made-up number
  EXPECT_TRUE(j["ETA"].is_null());
  IterationLog l = sample_log();
  l.mfu = 12.5;
  l.eta_seconds = 65;
  const auto k = nlohmann::json::parse(format_log_json(l));
  EXPECT_DOUBLE_EQ(k["MFU"].get<double>(), 12.5);
  EXPECT_EQ(k["ETA"], "0:01:05");
  EXPECT_DOUBLE_EQ(k["eta_seconds"].get<double>(), 65.0);
}

TEST(Metrics, ValidationLine) {
  EXPECT_EQ(format_validation_line("iteration 100", 5.43),
            " validation loss at iteration 100 | lm loss value=5.430000 |"
            " lm loss PPL=228.149245 |");
}

TEST(Metrics, FlopsFollowMegatronFormula) {
  mds::model::LlamaConfig c;  // Llama-2 7B shape with GQA 8
  c.num_layers = 32;
  c.hidden_size = 4096;
  c.ffn_hidden_size = 11008;
  c.num_attention_heads = 32;
  c.num_key_value_heads = 8;
  c.seq_length = 4096;
  c.vocab_size = 32000;
  c.finalize(128);
  const double B = 8, s = 4096, L = 32, h = 4096;
  const double expect =
      12 * B * s * L * h * h * (1 + 11008.0 / h * 1.5 + 8.0 / 32 + s / h + 32000.0 / (2 * L * h));
  EXPECT_DOUBLE_EQ(flops_per_iteration(c, 8), expect);
  EXPECT_NEAR(expect / 1e15, 1.35178, 1e-4);  // 1.35 PFLOP per 32k-token step
}
