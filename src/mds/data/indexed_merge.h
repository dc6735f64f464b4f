// mds preprocess --merge: joins many Megatron .bin/.idx pairs into one, as Megatron-LM's
// tools/merge_datasets.py does with IndexedDatasetBuilder.add_index: sequence sizes are
// concatenated, each input's document boundaries are shifted by the sequences before it (its
// leading 0 dropped), the token streams are concatenated. The result is byte-identical to
// preprocessing the concatenated inputs in one run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mds::data {

// Input values -> dataset prefixes, in order. A value is a prefix (a trailing ".bin" or ".idx"
// is dropped), a glob over .bin/.idx files (their prefixes, sorted, each once), or a directory,
// which stands for every PREFIX in it with both PREFIX.bin and PREFIX.idx, sorted by name
// (merge_datasets.py's --input DIR). A directory without any pair,
// or a file in it with only one half of its pair, is a UserError.
std::vector<std::string> expand_merge_inputs(const std::vector<std::string>& values);

struct MergeStats {
  int64_t datasets = 0, documents = 0, sequences = 0, tokens = 0;
};

// Writes OUTPUT.bin/.idx from the datasets, in order. Every input is opened and checked first
// (format, same dtype, a document index covering all its sequences) so that a bad shard fails
// before anything is written; the output appears only when complete (temporary names, renamed).
// Writing onto one of the inputs is refused.
MergeStats merge_indexed_datasets(const std::vector<std::string>& prefixes,
                                  const std::string& output_prefix);

}  // namespace mds::data
