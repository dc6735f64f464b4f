// `mds train`: parse Megatron-style flags, then run the training loop.
#include "mds/tools/subcommands.h"
#include "mds/train/arguments.h"
#include "mds/train/trainer.h"

namespace mds::tools {

int train_main(int argc, char** argv) {
  train::TrainArgs args;
  if (!train::parse_train_args(argc, argv, args)) return 0;  // --help
  return train::run_training(std::move(args));
}

}  // namespace mds::tools
