// Command-line pieces the subcommands share (CLI11): Megatron's tokenizer flags and parsing
// with --help, so every command spells and reports them the same way.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "mds/data/tokenizer.h"

namespace mds::tools {

// --tokenizer-type (described by type_help), --vocab-file, --merge-file, --tokenizer-model,
// --vocab-size into tok.
void add_tokenizer_flags(CLI::App& app, data::TokenizerOptions& tok, const std::string& type_help);

// Parses argv. Returns false when --help was printed (the command then exits 0); a parse
// error is a UserError pointing at 'mds COMMAND --help'.
bool parse_command_line(CLI::App& app, int argc, char** argv, const std::string& command);

}  // namespace mds::tools
