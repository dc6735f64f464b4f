#include "mds/tools/cli.h"

#include <iostream>

#include "mds/core/error.h"

namespace mds::tools {

void add_tokenizer_flags(CLI::App& app, data::TokenizerOptions& tok, const std::string& type_help) {
  app.add_option("--tokenizer-type", tok.type, type_help);
  app.add_option("--vocab-file", tok.vocab_file);
  app.add_option("--merge-file", tok.merge_file);
  app.add_option("--tokenizer-model", tok.tokenizer_model);
  app.add_option("--vocab-size", tok.vocab_size, "NullTokenizer: ids < N");
}

bool parse_command_line(CLI::App& app, int argc, char** argv, const std::string& command) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return false;
  } catch (const CLI::ParseError& e) {
    MDS_FAIL("{} (see 'mds {} --help')", e.what(), command);
  }
  return true;
}

}  // namespace mds::tools
