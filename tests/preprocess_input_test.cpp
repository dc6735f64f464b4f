// JsonlReader and expand_input_paths: the input side of mds preprocess (files, globs, gzip,
// line numbers across files, byte counts for progress, and every input mistake a UserError).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/jsonl_reader.h"

namespace fs = std::filesystem;
using mds::data::expand_input_paths;
using mds::data::JsonlReader;

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "mds_prep_in_XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return path + "/" + name; }
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// Each part is its own gzip member, so several parts make a multi-member file.
void write_gzip(const std::string& path, const std::vector<std::string>& parts) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const std::string& part : parts) {
    const std::string tmp = path + ".member";
    gzFile gz = gzopen(tmp.c_str(), "wb");
    ASSERT_NE(gz, nullptr);
    ASSERT_EQ(gzwrite(gz, part.data(), unsigned(part.size())), int(part.size()));
    gzclose(gz);
    std::ifstream in(tmp, std::ios::binary);
    out << in.rdbuf();
    fs::remove(tmp);
  }
}

struct Line {
  int file;
  int64_t number;
  std::string text;
  bool operator==(const Line&) const = default;
};

std::vector<Line> read_all(JsonlReader& r) {
  std::vector<Line> out;
  std::string line;
  while (r.next(line)) out.push_back({r.file_index(), r.line_number(), line});
  return out;
}

}  // namespace

TEST(JsonlReader, LinesAndLineNumbersAcrossPlainAndGzipFiles) {
  TempDir d;
  const std::string big(3 << 20, 'x');  // longer than the 1 MiB read buffer
  write_text(d.file("a.jsonl"), "one\n\ntwo\r\n");
  write_gzip(d.file("b.jsonl.gz"), {"three\n" + big + "\n", "four"});  // no final newline
  write_text(d.file("c.jsonl"), "");
  write_text(d.file("d.jsonl"), "five\n");
  JsonlReader r({d.file("a.jsonl"), d.file("b.jsonl.gz"), d.file("c.jsonl"), d.file("d.jsonl")});
  const std::vector<Line> want = {{0, 1, "one"}, {0, 2, ""},     {0, 3, "two\r"}, {1, 1, "three"},
                                  {1, 2, big},   {1, 3, "four"}, {3, 1, "five"}};
  EXPECT_EQ(read_all(r), want);
  std::string line;
  EXPECT_FALSE(r.next(line));
  int64_t text = 0;
  for (const Line& l : want) text += int64_t(l.text.size()) + 1;
  EXPECT_EQ(r.text_bytes(), text);
  // Progress counts stored (compressed) bytes, and ends at the total.
  int64_t stored = 0;
  for (const char* f : {"a.jsonl", "b.jsonl.gz", "c.jsonl", "d.jsonl"})
    stored += int64_t(fs::file_size(d.file(f)));
  EXPECT_EQ(r.stored_bytes_total(), stored);
  EXPECT_EQ(r.stored_bytes_read(), stored);
  EXPECT_LT(stored, text / 100);  // the x-run compresses: the total really is the stored size
}

TEST(JsonlReader, GzipIsRecognisedByContentNotName) {
  TempDir d;
  write_gzip(d.file("plain_name.jsonl"), {"{\"text\": \"a\"}\n"});
  write_text(d.file("text_name.gz"), "{\"text\": \"b\"}\n");
  JsonlReader r({d.file("plain_name.jsonl"), d.file("text_name.gz")});
  const std::vector<Line> want = {{0, 1, "{\"text\": \"a\"}"}, {1, 1, "{\"text\": \"b\"}"}};
  EXPECT_EQ(read_all(r), want);
}

TEST(JsonlReader, TruncatedGzipIsAUserErrorNamingTheFile) {
  TempDir d;
  std::string lines;
  for (int i = 0; i < 20000; ++i) lines += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  write_gzip(d.file("t.jsonl.gz"), {lines});
  fs::resize_file(d.file("t.jsonl.gz"), fs::file_size(d.file("t.jsonl.gz")) / 2);
  JsonlReader r({d.file("t.jsonl.gz")});
  std::string line;
  try {
    while (r.next(line)) {
    }
    FAIL() << "a truncated gzip file read to the end without an error";
  } catch (const mds::UserError& e) {
    EXPECT_NE(std::string(e.what()).find("t.jsonl.gz"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST(ExpandInputPaths, GlobsSortByNameAndKeepTheOrderOfValues) {
  TempDir d;
  for (const char* f : {"s10.jsonl", "s02.jsonl.gz", "s01.jsonl", "other.txt"})
    write_text(d.file(f), "");
  EXPECT_EQ(expand_input_paths({d.file("other.txt"), d.file("s*.jsonl*"), "-"}),
            (std::vector<std::string>{d.file("other.txt"), d.file("s01.jsonl"),
                                      d.file("s02.jsonl.gz"), d.file("s10.jsonl"), "-"}));
  write_text(d.file("s0[12].jsonl"), "");  // an existing file is itself, not a pattern
  EXPECT_EQ(expand_input_paths({d.file("s0[12].jsonl")}),
            (std::vector<std::string>{d.file("s0[12].jsonl")}));
  EXPECT_EQ(expand_input_paths({d.file("s0[12].*")}),
            (std::vector<std::string>{d.file("s01.jsonl"), d.file("s02.jsonl.gz")}));
}

TEST(ExpandInputPaths, MistakesAreUserErrorsNamingTheValue) {
  TempDir d;
  auto error_of = [](const std::vector<std::string>& values) -> std::string {
    try {
      expand_input_paths(values);
    } catch (const mds::UserError& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_NE(error_of({d.file("*.jsonl")}).find("matches no file"), std::string::npos);
  EXPECT_NE(error_of({d.file("missing.jsonl")}).find("missing.jsonl"), std::string::npos);
  EXPECT_NE(error_of({d.path}).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of({"-", "-"}).find("only once"), std::string::npos);
}
