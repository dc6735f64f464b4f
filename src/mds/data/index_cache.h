// On-disk cache of GPTDataset index maps, so a restart (or the 2,000th shard) builds nothing.
//
// A cache entry is one file `<hash>.mdsidx` named by a 64-bit FNV-1a hash of a description of
// everything that determines the maps: the shard's absolute prefix, its .idx size and mtime
// (re-preprocessed data gets new maps), the document range of the split, the sample count, the
// sequence length and the seed. The description is stored in the file and compared on load, so
// a hash collision is a rebuild, never wrong data. Files are written to a temporary name and
// renamed into place, so a reader sees a whole entry or none.
//
// Where: --data-cache-path if given; else `<data dir>/index-cache/`, falling back to
// `$XDG_CACHE_HOME/mds/index-cache` (or ~/.cache/...) when the data directory is read-only.
//
// Several ranks: exactly one is the builder (rank 0 in Megatron); the others are followers that
// wait for its files to appear and then load them. `Role` is that hook: the MPI launcher passes
// builder on rank 0 and follower elsewhere; a single process is always the builder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "mds/data/gpt_dataset.h"

namespace mds::data {

struct IndexMapKey {
  std::string prefix;
  int64_t doc_begin = 0, doc_end = 0;  // the split's document range
  int64_t num_samples = 0;
  int seq_length = 0;
  uint64_t seed = 0;
};

// The text hashed and stored with the entry (reads the .idx file's size and mtime).
std::string describe_index_maps(const IndexMapKey& key);

class IndexCache {
 public:
  enum class Role { builder, follower };
  // cache_path empty: beside the data. follower_timeout_s: how long a follower waits.
  explicit IndexCache(std::string cache_path, Role role = Role::builder,
                      double follower_timeout_s = 600);

  // The maps for key: loaded when cached; otherwise the builder calls build() and writes
  // them, a follower waits for the builder's file.
  GPTIndexMaps get(const IndexMapKey& key, const std::function<GPTIndexMaps()>& build);

  int64_t num_built() const { return built_; }
  int64_t num_loaded() const { return loaded_; }
  // Directory of the last entry loaded or written ("" before any).
  const std::string& last_dir() const { return last_dir_; }

 private:
  std::string cache_path_;
  Role role_;
  double follower_timeout_s_;
  int64_t built_ = 0, loaded_ = 0;
  std::string last_dir_;
};

// Entry file I/O, exposed for tests. load returns false when the file is missing, truncated,
// not an entry, or describes other maps.
bool load_index_maps(const std::string& path, const std::string& description, GPTIndexMaps& maps);
void save_index_maps(const std::string& path, const std::string& description,
                     const GPTIndexMaps& maps);

}  // namespace mds::data
