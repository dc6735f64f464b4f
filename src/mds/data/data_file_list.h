// Where the training data comes from: Megatron-DeepSpeed's `--data-path` (one PREFIX, or
// `w1 p1 w2 p2 ...`) and `--data-file-list FILE` (ALCF's DATA_FILE_LIST: lines of
// `weight prefix corpus`). Both become a list of shards with a weight and a corpus name;
// every shard's PREFIX.bin and PREFIX.idx are checked to exist here, so a typo in line 1,731
// of a 2,419-line list is reported before anything is built.
#pragma once

#include <string>
#include <vector>

namespace mds::data {

struct DataSource {
  double weight = 1.0;  // as given; normalise over all sources before use
  std::string prefix;   // PREFIX of PREFIX.bin/.idx (a trailing ".bin" removed)
  std::string corpus;   // shards of one corpus are concatenated and shuffled together
};

// Reads a data-file list: blank lines and `#` comments (whole-line or trailing) are skipped;
// every other line is exactly `weight prefix corpus`, the weight a non-negative number.
// Errors are UserErrors naming FILE:LINE.
std::vector<DataSource> read_data_file_list(const std::string& path);

// --data-path values: one PREFIX (weight 1), or weight/prefix pairs (each prefix its own
// corpus, named by the prefix).
std::vector<DataSource> parse_data_path(const std::vector<std::string>& values);

// A number in full ("0.5", "1e-3"), finite and >= 0; false otherwise.
bool parse_weight(const std::string& text, double& weight);

// "x.bin" -> "x"; anything else unchanged (Megatron lists often carry the .bin name).
std::string strip_bin_suffix(const std::string& prefix);

// UserError unless PREFIX.bin and PREFIX.idx both exist; `where` starts the message.
void check_shard_exists(const std::string& prefix, const std::string& where);

}  // namespace mds::data
