// The data flags as Megatron's argparse reads them: --data-path takes one PREFIX or
// weight/prefix pairs (nargs='*'), and given twice the last occurrence wins, whole, in
// `mds train` and `mds inspect-data` alike.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/indexed_dataset.h"
#include "mds/train/arguments.h"

namespace mds::train {
namespace {

namespace fs = std::filesystem;

// Parses the required flags followed by data_flags into a.
bool parse_into(std::vector<std::string> data_flags, TrainArgs& a) {
  std::vector<std::string> words = {"train",
                                    "--num-layers=2",
                                    "--hidden-size=64",
                                    "--num-attention-heads=4",
                                    "--seq-length=32",
                                    "--train-iters=3",
                                    "--lr=1e-3",
                                    "--tokenizer-type=GPT2BPETokenizer",
                                    "--micro-batch-size=2"};
  words.insert(words.end(), data_flags.begin(), data_flags.end());
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  return parse_train_args(int(argv.size()), argv.data(), a);
}

TrainArgs parse(std::vector<std::string> data_flags) {
  TrainArgs a;
  EXPECT_TRUE(parse_into(std::move(data_flags), a));
  return a;
}

using Values = std::vector<std::string>;

TEST(DataPathFlag, TakesOnePrefixOrWeightPrefixPairs) {
  EXPECT_EQ(parse({"--data-path", "a"}).data_path, Values{"a"});
  EXPECT_EQ(parse({"--data-path", "0.3", "a", "0.7", "b"}).data_path,
            (Values{"0.3", "a", "0.7", "b"}));
  EXPECT_EQ(parse({"--data-path", "0.3", "a", "--seed", "7", "--split", "1"}).data_path,
            (Values{"0.3", "a"}));
}

TEST(DataPathFlag, GivenTwiceTheLastOccurrenceWinsLikeArgparse) {
  // argparse with nargs='*' stores each occurrence's list, replacing the previous one.
  EXPECT_EQ(parse({"--data-path", "a", "--data-path", "b"}).data_path, Values{"b"});
  EXPECT_EQ(
      parse({"--data-path", "0.3", "a", "0.7", "b", "--seed", "7", "--data-path", "c"}).data_path,
      Values{"c"});
  EXPECT_EQ(parse({"--data-path", "a", "--data-path", "0.5", "b", "0.5", "c"}).data_path,
            (Values{"0.5", "b", "0.5", "c"}));
  EXPECT_EQ(parse({"--data-path=a", "--data-path=b"}).data_path, Values{"b"});
}

TEST(DataPathFlag, WithoutValuesIsAUserError) {
  TrainArgs a;
  EXPECT_THROW(parse_into({"--data-path"}, a), UserError);
  EXPECT_THROW(parse_into({"--data-path", "a", "--data-path"}, a), UserError);
}

TEST(DataPathFlag, InspectDataAlsoTakesTheLastOccurrence) {
  const fs::path dir = fs::temp_directory_path() / strfmt("mds_data_args_{}", int64_t(::getpid()));
  fs::create_directories(dir);
  const std::string shard = (dir / "one").string();
  {
    data::IndexedDatasetWriter w(shard, data::TokenDType::u16);
    w.add_document(std::vector<int32_t>{5, 6, 7});
    w.finalize();
  }
  // The first --data-path names no shard: only the second may be read.
  const std::string out = (dir / "out.txt").string();
  const std::string cmd = strfmt("{} inspect-data --data-path {} --data-path {} > {} 2>&1",
                                 MDS_BINARY, (dir / "missing").string(), shard, out);
  const int rc = std::system(cmd.c_str());
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  fs::remove_all(dir);
  EXPECT_EQ(rc, 0) << cmd << "\n" << text;
  EXPECT_NE(text.find("tokens: 3"), std::string::npos) << text;
}

}  // namespace
}  // namespace mds::train
