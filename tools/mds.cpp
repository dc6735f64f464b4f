// mds: one binary, one subcommand per job (train, preprocess, ...).
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "mds/core/error.h"
#include "mds/dist/launch_env.h"
#include "mds/tools/subcommands.h"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: mds <command> [flags]\n"
               "commands:\n"
               "  train        pre-train a Llama model (Megatron-DeepSpeed flags)\n"
               "  preprocess   tokenize JSONL into Megatron .bin/.idx\n"
               "  inspect-data statistics, documents and blend tables of .bin/.idx data\n"
               "  launch       run a command on every rank (mpirun/mpiexec/srun, PBS/Slurm)\n"
               "  info         devices, backend, MPI, BLAS, peak FLOP/s and build\n"
               "  generate     continue a prompt with a trained model (KV-cached sampling)\n"
               "  eval         loss and perplexity of a trained model on a text or dataset\n"
               "run 'mds <command> --help' for the flags of a command\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  try {
    if (cmd == "train") return mds::tools::train_main(argc - 1, argv + 1);
    if (cmd == "preprocess") return mds::tools::preprocess_main(argc - 1, argv + 1);
    if (cmd == "inspect-data") return mds::tools::inspect_data_main(argc - 1, argv + 1);
    if (cmd == "launch") return mds::tools::launch_main(argc - 1, argv + 1);
    if (cmd == "info") return mds::tools::info_main(argc - 1, argv + 1);
    if (cmd == "generate") return mds::tools::generate_main(argc - 1, argv + 1);
    if (cmd == "eval") return mds::tools::eval_main(argc - 1, argv + 1);
    std::fprintf(stderr, "mds: unknown command '%s'\n", cmd.c_str());
    usage(stderr);
    return 2;
  } catch (const mds::UserError& e) {
    // Every rank parses the same flags and fails the same way: rank 0 speaks for all.
    if (mds::dist::launcher_rank() == 0)
      std::fprintf(stderr, "mds %s: error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mds %s: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
