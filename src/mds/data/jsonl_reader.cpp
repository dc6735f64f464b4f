// JSONL input for mds preprocess: path expansion and a streaming line reader over zlib.
#include "mds/data/jsonl_reader.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "mds/core/error.h"

namespace mds::data {

namespace {

constexpr size_t kReadBytes = 1 << 20;

gzFile as_gz(void* p) {
  return static_cast<gzFile>(p);
}

bool has_glob_chars(const std::string& s) {
  return s.find_first_of("*?[") != std::string::npos;
}

void check_regular_file(const std::string& path, const std::string& value) {
  struct stat st {};
  MDS_CHECK(::stat(path.c_str(), &st) == 0, "--input {}: cannot open {} ({})", value, path,
            std::strerror(errno));
  MDS_CHECK(!S_ISDIR(st.st_mode),
            "--input {}: {} is a directory; give files or a glob like {}/*.jsonl", value, path,
            path);
}

}  // namespace

std::vector<std::string> expand_input_paths(const std::vector<std::string>& values) {
  std::vector<std::string> paths;
  bool stdin_seen = false;
  for (const std::string& v : values) {
    if (v == "-") {
      MDS_CHECK(!stdin_seen, "--input: '-' (stdin) can be given only once");
      stdin_seen = true;
      paths.push_back(v);
    } else if (has_glob_chars(v) && !std::filesystem::exists(v)) {  // a file named a[1] is a file
      glob_t g{};
      const int rc = ::glob(v.c_str(), 0, nullptr, &g);
      std::vector<std::string> matches;
      if (rc == 0)
        for (size_t i = 0; i < g.gl_pathc; ++i) matches.emplace_back(g.gl_pathv[i]);
      ::globfree(&g);
      MDS_CHECK(rc == 0 || rc == GLOB_NOMATCH, "--input {}: cannot expand the glob (error {})", v,
                rc);
      MDS_CHECK(!matches.empty(), "--input {}: the glob matches no file", v);
      std::sort(matches.begin(), matches.end());
      for (auto& m : matches) {
        check_regular_file(m, v);
        paths.push_back(std::move(m));
      }
    } else {
      check_regular_file(v, v);
      paths.push_back(v);
    }
  }
  MDS_CHECK(!paths.empty(), "--input: no input given");
  return paths;
}

std::string JsonlReader::display_name(const std::string& path) {
  return path == "-" ? "<stdin>" : path;
}

JsonlReader::JsonlReader(std::vector<std::string> paths) : paths_(std::move(paths)) {
  for (const std::string& p : paths_) {
    struct stat st {};
    if (p == "-" || ::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      total_ = -1;  // stdin or a pipe: the size is unknown, so there is no ETA
      break;
    }
    total_ += int64_t(st.st_size);
  }
  buf_.resize(kReadBytes);
}

JsonlReader::~JsonlReader() {
  if (gz_) gzclose(as_gz(gz_));
}

int64_t JsonlReader::stored_bytes_read() const {
  return done_stored_ + (gz_ ? int64_t(gzoffset(as_gz(gz_))) : 0);
}

bool JsonlReader::open_next_file() {
  if (gz_) {
    done_stored_ += int64_t(gzoffset(as_gz(gz_)));
    gzclose(as_gz(gz_));
    gz_ = nullptr;
  }
  if (file_ + 1 >= int(paths_.size())) return false;
  ++file_;
  line_no_ = 0;
  const std::string& path = paths_[size_t(file_)];
  // stdin is dup'ed so that gzclose does not close the process's fd 0.
  const int fd = path == "-" ? ::dup(STDIN_FILENO) : ::open(path.c_str(), O_RDONLY);
  MDS_CHECK(fd >= 0, "--input {}: cannot open ({})", display_name(path), std::strerror(errno));
  gz_ = gzdopen(fd, "rb");
  if (!gz_) {
    ::close(fd);
    MDS_FAIL("--input {}: cannot open (out of memory in zlib)", display_name(path));
  }
  gzbuffer(as_gz(gz_), unsigned(kReadBytes));
  return true;
}

bool JsonlReader::fill() {
  if (begin_ > 0) {  // keep the partial line at the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() - end_ < kReadBytes / 2)
    buf_.resize(std::max(buf_.size() * 2, end_ + kReadBytes));
  const unsigned want = unsigned(std::min<size_t>(buf_.size() - end_, 1u << 30));
  const int n = gzread(as_gz(gz_), buf_.data() + end_, want);
  if (n < 0) {
    int code = 0;
    const char* msg = gzerror(as_gz(gz_), &code);
    MDS_FAIL("--input {}: read error after line {} ({}); is the gzip file truncated or corrupt?",
             display_name(paths_[size_t(file_)]), line_no_,
             code == Z_ERRNO ? std::strerror(errno) : msg);
  }
  // gzread stops short on a truncated gzip stream without an error; gzerror tells.
  if (n == 0) {
    int code = 0;
    const char* msg = gzerror(as_gz(gz_), &code);
    MDS_CHECK(code == Z_OK || code == Z_STREAM_END || code == Z_BUF_ERROR,
              "--input {}: read error after line {} ({}); is the gzip file truncated or corrupt?",
              display_name(paths_[size_t(file_)]), line_no_, msg);
    MDS_CHECK(code != Z_BUF_ERROR,
              "--input {}: the gzip stream ends early after line {} (truncated file?)",
              display_name(paths_[size_t(file_)]), line_no_);
  }
  end_ += size_t(n);
  return n > 0;
}

bool JsonlReader::next(std::string& line) {
  if (!gz_ && !open_next_file()) return false;
  size_t scanned = begin_;
  for (;;) {
    const char* nl =
        static_cast<const char*>(std::memchr(buf_.data() + scanned, '\n', end_ - scanned));
    if (nl) {
      const size_t at = size_t(nl - buf_.data());
      line.assign(buf_.data() + begin_, at - begin_);
      begin_ = at + 1;
      break;
    }
    scanned = end_ - begin_;  // offsets shift to 0 in fill()
    if (fill()) continue;
    if (end_ > begin_) {  // a last line without '\n'
      line.assign(buf_.data() + begin_, end_ - begin_);
      begin_ = end_;
      break;
    }
    begin_ = end_ = 0;
    if (!open_next_file()) return false;
    scanned = 0;
  }
  ++line_no_;
  text_bytes_ += int64_t(line.size()) + 1;
  return true;
}

}  // namespace mds::data
