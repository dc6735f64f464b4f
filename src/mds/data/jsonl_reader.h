// The input side of mds preprocess: JSONL lines streamed from files, globs, gzip files or stdin.
//
// Every input goes through zlib's gzread, which decompresses gzip (including concatenated
// members, as `cat a.gz b.gz` makes) and passes any other file through unchanged, so a .gz is
// recognised by its bytes, not its name. Memory is one read buffer plus the longest line: a
// 100 GB input streams through in constant space.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mds::data {

// Expands --input values in order: "-" is stdin; a value with glob characters (* ? [) that is
// not itself an existing file becomes its matches sorted by name (Megatron's preprocess_data.py
// globs --input the same way); anything else is one file. A glob matching nothing, a missing file,
// a directory or "-" given twice is a UserError naming the value.
std::vector<std::string> expand_input_paths(const std::vector<std::string>& values);

class JsonlReader {
 public:
  // paths as expand_input_paths returns them; read one after the other.
  explicit JsonlReader(std::vector<std::string> paths);
  ~JsonlReader();
  JsonlReader(const JsonlReader&) = delete;
  JsonlReader& operator=(const JsonlReader&) = delete;

  // The next line without its '\n' (a final line without '\n' counts too); false after the
  // last line of the last file. A read or decompression error is a UserError naming the file.
  bool next(std::string& line);

  const std::vector<std::string>& paths() const { return paths_; }
  int file_index() const { return file_; }          // file of the last line returned
  int64_t line_number() const { return line_no_; }  // 1-based, within that file
  // "<stdin>" for "-", the path otherwise: for messages.
  static std::string display_name(const std::string& path);

  // Bytes of the lines returned so far, newlines included (uncompressed).
  int64_t text_bytes() const { return text_bytes_; }
  // Bytes consumed from the files as stored (compressed for gzip), and their total size:
  // progress = consumed / total. Total is -1 when unknown (stdin).
  int64_t stored_bytes_read() const;
  int64_t stored_bytes_total() const { return total_; }

 private:
  bool open_next_file();
  bool fill();  // reads more bytes into buf_; false at the end of the current file

  std::vector<std::string> paths_;
  int file_ = -1;
  int64_t line_no_ = 0, text_bytes_ = 0, total_ = 0, done_stored_ = 0;
  void* gz_ = nullptr;  // gzFile of the current file
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0;  // unread bytes are buf_[begin_, end_)
};

}  // namespace mds::data
