// Parsing of --data-path and --data-file-list into weighted, named shards.
#include "mds/data/data_file_list.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mds/core/error.h"

namespace mds::data {

bool parse_weight(const std::string& text, double& weight) {
  if (text.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == nullptr || *end != '\0' || !std::isfinite(v) || v < 0) return false;
  weight = v;
  return true;
}

std::string strip_bin_suffix(const std::string& prefix) {
  const std::string ext = ".bin";
  if (prefix.size() > ext.size() &&
      prefix.compare(prefix.size() - ext.size(), ext.size(), ext) == 0)
    return prefix.substr(0, prefix.size() - ext.size());
  return prefix;
}

void check_shard_exists(const std::string& prefix, const std::string& where) {
  for (const char* ext : {".bin", ".idx"}) {
    const std::string path = prefix + ext;
    std::error_code ec;
    MDS_CHECK(std::filesystem::is_regular_file(path, ec),
              "{}: shard {} not found (missing {}); fix the path or create it with mds preprocess",
              where, prefix, path);
  }
}

std::vector<DataSource> read_data_file_list(const std::string& path) {
  std::ifstream in(path);
  MDS_CHECK(in.good(), "--data-file-list {}: cannot open it; check the path", path);
  std::vector<DataSource> sources;
  std::string line;
  for (int64_t lineno = 1; std::getline(in, line); ++lineno) {
    if (const size_t hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream fields(line);
    std::vector<std::string> f;
    for (std::string w; fields >> w;) f.push_back(w);
    if (f.empty()) continue;
    const std::string where = strfmt("{}:{}", path, lineno);
    MDS_CHECK(f.size() == 3, "{}: expected 3 fields 'weight prefix corpus', found {} in '{}'",
              where, f.size(), line);
    DataSource s;
    MDS_CHECK(parse_weight(f[0], s.weight),
              "{}: weight '{}' is not a non-negative number (line: '{}')", where, f[0], line);
    s.prefix = strip_bin_suffix(f[1]);
    s.corpus = f[2];
    check_shard_exists(s.prefix, where);
    sources.push_back(std::move(s));
  }
  MDS_CHECK(!sources.empty(), "--data-file-list {} lists no shards (only blank or comment lines)",
            path);
  return sources;
}

std::vector<DataSource> parse_data_path(const std::vector<std::string>& values) {
  MDS_CHECK(!values.empty(), "--data-path needs a PREFIX or weight/prefix pairs");
  std::vector<DataSource> sources;
  if (values.size() == 1) {
    DataSource s;
    s.prefix = strip_bin_suffix(values[0]);
    s.corpus = s.prefix;
    check_shard_exists(s.prefix, "--data-path");
    sources.push_back(std::move(s));
    return sources;
  }
  MDS_CHECK(values.size() % 2 == 0,
            "--data-path with several values takes weight/prefix pairs (w1 p1 w2 p2 ...); got "
            "{} values",
            values.size());
  for (size_t i = 0; i < values.size(); i += 2) {
    DataSource s;
    MDS_CHECK(parse_weight(values[i], s.weight),
              "--data-path: weight '{}' (value {}) is not a non-negative number; the form is "
              "w1 p1 w2 p2 ...",
              values[i], i + 1);
    s.prefix = strip_bin_suffix(values[i + 1]);
    s.corpus = s.prefix;
    check_shard_exists(s.prefix, "--data-path");
    sources.push_back(std::move(s));
  }
  return sources;
}

}  // namespace mds::data
