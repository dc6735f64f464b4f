#include "mds/ckpt/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "mds/core/error.h"

namespace mds::ckpt {

void write_file_durably(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  MDS_CHECK(f, "cannot create {}: {}", path, std::strerror(errno));
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() &&
                  std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  MDS_CHECK(ok && closed, "cannot write {}: {} (is the disk full?)", path, std::strerror(err));
}

void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  MDS_CHECK(fd >= 0, "cannot open folder {}: {}", dir, std::strerror(errno));
  ::fsync(fd);  // best effort: some file systems refuse fsync on directories
  ::close(fd);
}

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  write_file_durably(tmp, text);
  MDS_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename {} to {}: {}", tmp, path,
            std::strerror(errno));
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  sync_directory(parent.empty() ? "." : parent.string());
}

}  // namespace mds::ckpt
