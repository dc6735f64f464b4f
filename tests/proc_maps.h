// How many times this process has a file memory-mapped (its lines in /proc/self/maps): lets
// the data tests see which shards are mapped, without a test-only hook in the library.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

inline int mappings_of(const std::filesystem::path& file) {
  const std::string path = std::filesystem::canonical(file).string();
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);)
    if (line.size() > path.size() &&
        line.compare(line.size() - path.size(), path.size(), path) == 0 &&
        line[line.size() - path.size() - 1] == ' ')
      ++n;
  return n;
}
