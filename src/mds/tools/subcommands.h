// Entry points of the mds subcommands: each parses its own flags (argv[0] is the command name)
// and returns the process exit code. User mistakes are thrown as mds::UserError.
#pragma once

namespace mds::tools {

int train_main(int argc, char** argv);         // tools/train_cmd.cpp
int preprocess_main(int argc, char** argv);    // tools/preprocess_cmd.cpp
int inspect_data_main(int argc, char** argv);  // tools/inspect_data_cmd.cpp
int launch_main(int argc, char** argv);        // tools/launch_cmd.cpp
int info_main(int argc, char** argv);          // tools/info_cmd.cpp
int generate_main(int argc, char** argv);      // tools/generate_cmd.cpp
int eval_main(int argc, char** argv);          // tools/eval_cmd.cpp

}  // namespace mds::tools
