// The index-map cache: file format, directory choice, atomic writes, builder/follower roles.
//
// Entry file, native little-endian (caches are per machine family, like Megatron's .npy):
//   "MDSIMAP1" (8 B) | u64 description length | description | i32 num_epochs
//   | u8 separate_last_epoch | u64 n_doc_idx | u64 n_sample_idx | u64 n_shuffle_idx
//   | int32 doc_idx[] | int64 sample_idx[] | int64 shuffle_idx[]
#include "mds/data/index_cache.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "mds/core/error.h"

namespace fs = std::filesystem;

namespace mds::data {
namespace {

constexpr char kMagic[8] = {'M', 'D', 'S', 'I', 'M', 'A', 'P', '1'};

uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string user_cache_dir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "mds" / "index-cache").string();
  const char* home = std::getenv("HOME");
  return (fs::path(home && *home ? home : "/tmp") / ".cache" / "mds" / "index-cache").string();
}

bool writable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  return fs::is_directory(dir, ec) && ::access(dir.c_str(), W_OK) == 0;
}

template <typename T>
bool read_array(std::FILE* f, std::vector<T>& v, uint64_t n) {
  v.resize(size_t(n));
  return n == 0 || std::fread(v.data(), sizeof(T), size_t(n), f) == size_t(n);
}

}  // namespace

std::string describe_index_maps(const IndexMapKey& k) {
  std::error_code ec;
  const std::string idx = k.prefix + ".idx";
  const auto size = fs::file_size(idx, ec);
  const auto mtime = fs::last_write_time(idx, ec).time_since_epoch().count();
  return strfmt(
      "mds GPT index maps v1\nprefix {}\nidx bytes {}\nidx mtime {}\ndocuments [{}, {})\n"
      "samples {}\nseq length {}\nseed {}\n",
      fs::absolute(k.prefix).lexically_normal().string(), ec ? 0 : uint64_t(size), int64_t(mtime),
      k.doc_begin, k.doc_end, k.num_samples, k.seq_length, k.seed);
}

bool load_index_maps(const std::string& path, const std::string& description, GPTIndexMaps& m) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  bool ok = false;
  char magic[8];
  uint64_t len = 0, n[3] = {0, 0, 0};
  int32_t epochs = 0;
  uint8_t separate = 0;
  if (std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, kMagic, 8) == 0 &&
      std::fread(&len, 8, 1, f) == 1 && len == description.size()) {
    std::string desc(size_t(len), '\0');
    ok = std::fread(desc.data(), 1, desc.size(), f) == desc.size() && desc == description &&
         std::fread(&epochs, 4, 1, f) == 1 && std::fread(&separate, 1, 1, f) == 1 &&
         std::fread(n, 8, 3, f) == 3 && read_array(f, m.doc_idx, n[0]) &&
         read_array(f, m.sample_idx, n[1]) && read_array(f, m.shuffle_idx, n[2]) &&
         std::fgetc(f) == EOF;
  }
  std::fclose(f);
  m.num_epochs = epochs;
  m.separate_last_epoch = separate != 0;
  return ok && n[1] >= 2 && n[1] % 2 == 0 && int64_t(n[2]) == m.num_built_samples();
}

void save_index_maps(const std::string& path, const std::string& description,
                     const GPTIndexMaps& m) {
  const std::string tmp = strfmt("{}.tmp.{}", path, int64_t(::getpid()));
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  MDS_CHECK(f, "cannot write index cache {} ({}); pass a writable --data-cache-path", tmp,
            std::strerror(errno));
  const uint64_t len = description.size();
  const int32_t epochs = m.num_epochs;
  const uint8_t separate = m.separate_last_epoch ? 1 : 0;
  const uint64_t n[3] = {m.doc_idx.size(), m.sample_idx.size(), m.shuffle_idx.size()};
  bool ok = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(&len, 8, 1, f) == 1 &&
            std::fwrite(description.data(), 1, len, f) == len &&
            std::fwrite(&epochs, 4, 1, f) == 1 && std::fwrite(&separate, 1, 1, f) == 1 &&
            std::fwrite(n, 8, 3, f) == 3 && std::fwrite(m.doc_idx.data(), 4, n[0], f) == n[0] &&
            std::fwrite(m.sample_idx.data(), 8, n[1], f) == n[1] &&
            std::fwrite(m.shuffle_idx.data(), 8, n[2], f) == n[2];
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    MDS_FAIL("writing index cache {} failed ({}); is the disk full?", path, std::strerror(err));
  }
}

IndexCache::IndexCache(std::string cache_path, Role role, double follower_timeout_s)
    : cache_path_(std::move(cache_path)), role_(role), follower_timeout_s_(follower_timeout_s) {}

GPTIndexMaps IndexCache::get(const IndexMapKey& key, const std::function<GPTIndexMaps()>& build) {
  const std::string desc = describe_index_maps(key);
  char name_buf[32];
  std::snprintf(name_buf, sizeof name_buf, "%016llx.mdsidx",
                static_cast<unsigned long long>(fnv1a64(desc)));
  const std::string name = name_buf;
  // Candidate directories in lookup order; the first writable one receives new entries.
  std::vector<fs::path> dirs;
  if (!cache_path_.empty()) {
    dirs.push_back(cache_path_);
  } else {
    fs::path data_dir = fs::path(key.prefix).parent_path();
    if (data_dir.empty()) data_dir = ".";
    dirs.push_back(data_dir / "index-cache");
    dirs.push_back(user_cache_dir());
  }
  GPTIndexMaps maps;
  auto try_load = [&]() {
    for (const auto& d : dirs)
      if (load_index_maps((d / name).string(), desc, maps)) {
        last_dir_ = d.string();
        ++loaded_;
        return true;
      }
    return false;
  };
  if (try_load()) return maps;

  if (role_ == Role::follower) {
    const auto start = std::chrono::steady_clock::now();
    while (!try_load()) {
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      MDS_CHECK(waited < follower_timeout_s_,
                "waited {} s for the builder rank to write index cache {} in {}: is the cache "
                "directory on a file system all nodes share? (set --data-cache-path)",
                int64_t(waited), name, dirs[0].string());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return maps;
  }

  maps = build();
  ++built_;
  for (const auto& d : dirs)
    if (writable_dir(d)) {
      save_index_maps((d / name).string(), desc, maps);
      last_dir_ = d.string();
      return maps;
    }
  MDS_FAIL("no writable directory for the index cache (tried {}); pass --data-cache-path DIR",
           dirs[0].string());
}

}  // namespace mds::data
