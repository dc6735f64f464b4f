// Shared by the tokenizer reference tests (tokenizer_*_test.cpp): where the data is, private
// temporary files, running a reference program over texts, the Brown texts and the hard cases.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mds/core/error.h"

namespace tok_test {

namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;

inline std::string data_dir() {
  const char* env = std::getenv("MDS_DATA_DIR");
  return env && *env ? env : MDS_SOURCE_DIR "/data";
}

// Empty when every file is in the data dir, else what is missing and how to get it.
inline std::string missing_files(std::initializer_list<const char*> files) {
  for (const char* f : files)
    if (!fs::exists(fs::path(data_dir()) / f))
      return mds::strfmt("{}/{} not found: run `bash scripts/prepare_data.sh` first", data_dir(),
                         f);
  return "";
}

// The references and data come from scripts/setup.sh and scripts/prepare_data.sh, which
// scripts/test.sh runs first: a missing one is a broken setup, so the test fails, never skips.
#define TOK_REQUIRE(why)              \
  do {                                \
    if (auto w = (why); !w.empty()) { \
      GTEST_FAIL() << w;              \
    }                                 \
  } while (0)

// Directories made by temp_path(), removed when the test program ends.
struct TempDirs : ::testing::Environment {
  std::vector<fs::path> dirs;
  void TearDown() override {
    std::error_code ec;
    for (const auto& d : dirs) fs::remove_all(d, ec);
  }
};
inline TempDirs* const temp_dirs =
    static_cast<TempDirs*>(::testing::AddGlobalTestEnvironment(new TempDirs));

// A file in a directory private to this test and process (ctest runs tests in parallel).
inline fs::path temp_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() /
                 mds::strfmt("mds_tok2_{}_{}_{}", info->test_suite_name(), info->name(), getpid());
  if (fs::create_directories(dir)) temp_dirs->dirs.push_back(dir);
  return dir / name;
}

inline fs::path write_jsonl(const std::vector<std::string>& texts) {
  const fs::path in = temp_path("input.jsonl");
  std::ofstream out(in);
  for (const auto& t : texts) out << nlohmann::json{{"text", t}}.dump() << "\n";
  return in;
}

// Runs `command < jsonl`; the command prints one JSON id array per input line.
inline std::vector<Ids> run_reference(const std::string& command, const fs::path& jsonl) {
  const std::string cmd = command + " < '" + jsonl.string() + "'";
  FILE* pipe = popen(cmd.c_str(), "r");
  EXPECT_NE(pipe, nullptr) << cmd;
  if (!pipe) return {};
  std::string out;
  char buf[1 << 16];
  for (size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  EXPECT_EQ(pclose(pipe), 0) << cmd;
  std::vector<Ids> ids;
  size_t pos = 0;
  for (size_t end; (end = out.find('\n', pos)) != std::string::npos; pos = end + 1)
    ids.push_back(nlohmann::json::parse(out.substr(pos, end - pos)).get<Ids>());
  return ids;
}

// FNV-1a of a file's bytes, as text: names the input a cached answer belongs to.
inline std::string file_hash(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t h = 1469598103934665603ull;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0)
    for (std::streamsize i = 0; i < in.gcount(); ++i)
      h = (h ^ static_cast<unsigned char>(buf[i])) * 1099511628211ull;
  return std::to_string(h);
}

// run_reference(), but the answer is kept in the data dir as CACHE (its first line the input's
// hash) and reused for the same input while it is newer than every path in `sources` (the
// reference script, the tokenizer files, the package): reference runs on Brown take tens of
// seconds and never change for the same inputs.
inline std::vector<Ids> cached_reference(const std::string& command, const fs::path& jsonl,
                                         const fs::path& cache,
                                         const std::vector<fs::path>& sources) {
  const std::string hash = file_hash(jsonl);
  auto newest = fs::last_write_time(sources.at(0));
  for (const auto& s : sources) newest = std::max(newest, fs::last_write_time(s));
  if (fs::exists(cache) && fs::last_write_time(cache) >= newest) {
    std::ifstream in(cache);
    std::string first;
    if (std::getline(in, first) && first == hash) {
      std::vector<Ids> ids;
      for (std::string line; std::getline(in, line);)
        ids.push_back(nlohmann::json::parse(line).get<Ids>());
      return ids;
    }
  }
  std::vector<Ids> ids = run_reference(command, jsonl);
  const fs::path tmp = temp_path("reference-ids");
  {
    std::ofstream out(tmp);
    out << hash << "\n";
    for (const Ids& v : ids) out << nlohmann::json(v).dump() << "\n";
  }
  std::error_code ec;  // a read-only data dir only costs the next run its time
  fs::copy_file(tmp, cache.string() + ".tmp", fs::copy_options::overwrite_existing, ec);
  if (!ec) fs::rename(cache.string() + ".tmp", cache, ec);
  return ids;
}

inline std::vector<std::string> brown_texts() {
  std::ifstream in(data_dir() + "/brown.jsonl");
  std::vector<std::string> texts;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) texts.push_back(nlohmann::json::parse(line)["text"].get<std::string>());
  return texts;
}

inline std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

// Inputs where tokenizer implementations tend to differ: whitespace runs, Unicode, digits,
// punctuation, bytes no vocabulary has (byte fallback), long words, special-token look-alikes.
inline std::vector<std::string> hard_cases() {
  return {
      "",
      "Hello world",
      "Hello, world! How are you?",
      " leading space",
      "  two leading spaces",
      "trailing spaces   ",
      "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m fa\u00e7ade",
      "\u5317\u4eac\u662f\u4e2d\u56fd\u7684\u9996\u90fd\u3002\u65e5\u672c\u8a9e\u306e\u30c6\u30ad"
      "\u30b9\u30c8",
      "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
      "emoji \U0001F600 \U0001F389\U0001F44D\U0001F3FD "
      "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 \u2764\uFE0F",
      "a  b   c    d",
      "tabs\tand\t\ttabs",
      "new\nlines\n\n\nmany",
      "trailing newline\n",
      "\n\n\n",
      "   ",
      "\t \n \t",
      "word   \nnext",
      "a\r\nb\r\n",
      repeat(" ", 100) + "x",
      repeat(" \n", 50) + "x",
      "it's I'm we're they've you'll he'd don't",
      "IT'S I'M WE'RE THEY'VE YOU'LL HE'D DON'T",
      "it\u2019s curly",
      "12345678901234567890 3.14159 1,000,000",
      "\u0663\u0664\u0665 \u00b9\u00b2\u00b3 \u00bd \u216b",
      "!!! ??? ... --- *** ((( ))) {[<>]} @#$%^&*",
      "{\"a\": \"b\",\"c\": [\"d\",\"e\"]}",
      "<|endoftext|> <s> </s> <unk> <EOD> <|begin_of_text|>",
      "https://example.com/path?query=1&x=y#frag C:\\Windows\\System32",
      "non\u00a0breaking\u00a0space en\u2002space ideographic\u3000space",
      "line\u2028sep bom\ufeffinside",
      std::string("nul\0byte", 8),
      "bell\x07 esc\x1b del\x7f",
      "zwsp\u200bzwj\u200dzwnj\u200c",
      "\uff21\uff22\uff23 \ufb01 \u2460",  // fullwidth, ligature, circled: NFKC changes them
      repeat("a", 3000),
      repeat("supercalifragilisticexpialidocious", 20),
      repeat("!", 1000),
      "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
      "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
      "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
      "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u05e9\u05dc\u05d5\u05dd",
      "combining e\u0301 a\u0308",
      "\U0001D518\U0001D52B\U0001D526 \U0001D7D9\U0001D7DA",
      "\u2581 already a metaspace \u2581\u2581",
      repeat("The quick brown fox jumps over the lazy dog. ", 10),
  };
}

template <typename F>
std::string user_error(F&& f) {
  try {
    f();
  } catch (const mds::UserError& e) {
    return e.what();
  }
  return "(no UserError thrown)";
}

}  // namespace tok_test
