// The Parallelism flags of `mds train`: --ddp-bucket-size, the data-parallel size known only
// once the world is (set_data_parallel: default global batch micro x D, divisibility), and
// the model-parallel sizes (their layout checks live in dist/topology, see topology_test);
// and the activation recomputation flags, Megatron-LM's and Megatron-DeepSpeed's spellings.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/train/arguments.h"

namespace mds::train {
namespace {

TrainArgs parse(std::vector<std::string> extra) {
  std::vector<std::string> words = {"train",
                                    "--num-layers",
                                    "2",
                                    "--hidden-size",
                                    "64",
                                    "--num-attention-heads",
                                    "4",
                                    "--seq-length",
                                    "32",
                                    "--train-iters",
                                    "3",
                                    "--lr",
                                    "1e-3",
                                    "--data-path",
                                    "x",
                                    "--tokenizer-type",
                                    "GPT2BPETokenizer",
                                    "--micro-batch-size",
                                    "2"};
  words.insert(words.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  TrainArgs a;
  EXPECT_TRUE(parse_train_args(int(argv.size()), argv.data(), a));
  return a;
}

std::string error_of(std::vector<std::string> extra, int64_t dp = 1) {
  try {
    TrainArgs a = parse(std::move(extra));
    set_data_parallel(a, dp);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(ParallelArgs, BucketSizeDefaultsToMegatronsFloorAndParses) {
  EXPECT_EQ(parse({}).ddp_bucket_size, 40000000);
  EXPECT_EQ(parse({"--ddp-bucket-size", "1000"}).ddp_bucket_size, 1000);
  EXPECT_NE(error_of({"--ddp-bucket-size", "0"}).find("--ddp-bucket-size"), std::string::npos);
}

TEST(ParallelArgs, GlobalBatchDefaultsToMicroTimesDataParallel) {
  TrainArgs a = parse({});
  set_data_parallel(a, 4);
  EXPECT_EQ(a.data_parallel, 4);
  EXPECT_EQ(a.global_batch_size, 8);
  EXPECT_EQ(a.num_micro_batches(), 1);
  TrainArgs b = parse({"--global-batch-size", "16"});
  set_data_parallel(b, 2);
  EXPECT_EQ(b.num_micro_batches(), 4);  // per data-parallel rank
}

TEST(ParallelArgs, GlobalBatchMustDivideByMicroTimesDataParallel) {
  const std::string e = error_of({"--global-batch-size", "6"}, 2);
  EXPECT_NE(e.find("--global-batch-size (6)"), std::string::npos) << e;
  EXPECT_NE(e.find("data-parallel size (2)"), std::string::npos) << e;
  EXPECT_EQ(error_of({"--global-batch-size", "6"}, 3), "");
  EXPECT_NE(error_of({"--global-batch-size", "5"}).find("--global-batch-size"), std::string::npos);
}

TEST(ParallelArgs, ModelParallelSizesParse) {
  const TrainArgs a = parse({"--tensor-model-parallel-size", "2", "--pipeline-model-parallel-size",
                             "4", "--ds-sequence-parallel-size", "2"});
  EXPECT_EQ(a.tensor_parallel, 2);
  EXPECT_EQ(a.pipeline_parallel, 4);
  EXPECT_EQ(a.sequence_parallel, 2);
}

using model::RecomputeGranularity;
using model::RecomputeMethod;

TEST(RecomputeArgs, DefaultKeepsEverything) {
  EXPECT_EQ(parse({}).recompute.granularity, RecomputeGranularity::none);
}

TEST(RecomputeArgs, MegatronFlagsParse) {
  const TrainArgs a = parse({"--recompute-granularity", "full", "--recompute-method", "block",
                             "--recompute-num-layers", "2"});
  EXPECT_EQ(a.recompute.granularity, RecomputeGranularity::full);
  EXPECT_EQ(a.recompute.method, RecomputeMethod::block);
  EXPECT_EQ(a.recompute.num_layers, 2);
  EXPECT_EQ(a.recompute.describe(), "full, block, 2 layers");
  EXPECT_TRUE(parse({"--recompute-granularity", "selective"}).recompute.selective());
  EXPECT_TRUE(parse({"--recompute-activations"}).recompute.selective());
}

TEST(RecomputeArgs, CheckpointActivationsIsFullUniformOverCheckpointNumLayers) {
  const TrainArgs a = parse({"--checkpoint-activations"});
  EXPECT_EQ(a.recompute.granularity, RecomputeGranularity::full);
  EXPECT_EQ(a.recompute.method, RecomputeMethod::uniform);
  EXPECT_EQ(a.recompute.num_layers, 1);
  EXPECT_EQ(
      parse({"--checkpoint-activations", "--checkpoint-num-layers", "2"}).recompute.num_layers, 2);
}

TEST(RecomputeArgs, InconsistentFlagsSayWhatToChange) {
  auto has = [](const std::string& e, const char* what) {
    return e.find(what) != std::string::npos;
  };
  EXPECT_TRUE(has(error_of({"--recompute-granularity", "full"}), "needs --recompute-method"));
  EXPECT_TRUE(
      has(error_of({"--recompute-method", "uniform"}), "needs --recompute-granularity full"));
  EXPECT_TRUE(has(error_of({"--recompute-granularity", "selective", "--recompute-method", "block"}),
                  "needs --recompute-granularity full"));
  EXPECT_TRUE(has(error_of({"--checkpoint-activations", "--recompute-granularity", "full"}),
                  "give one of"));
  EXPECT_TRUE(has(error_of({"--checkpoint-activations", "--recompute-method", "block"}),
                  "recomputes uniformly"));
  EXPECT_TRUE(has(error_of({"--recompute-granularity", "full", "--recompute-method", "uniform",
                            "--recompute-num-layers", "3"}),
                  "--recompute-num-layers (3) exceeds --num-layers (2)"));
  EXPECT_TRUE(has(error_of({"--recompute-granularity", "full", "--recompute-method", "uniform",
                            "--recompute-num-layers", "0"}),
                  "must be positive"));
  EXPECT_TRUE(has(error_of({"--checkpoint-activations", "--checkpoint-num-layers", "0"}),
                  "must be positive"));
}

}  // namespace
}  // namespace mds::train
