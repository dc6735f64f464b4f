// GPT-2 BPE tokenizer: ids equal to the reference (npm gpt-3-encoder via tests/reference/
// gpt2_encode.js) on the Brown corpus and on hand-made hard cases, exact decode round trips,
// invalid UTF-8, concurrency, BPE merge semantics on a synthetic vocabulary, and the errors users
// see. Needs `bash scripts/prepare_data.sh` (data dir: $MDS_DATA_DIR or <repo>/data) and node for
// the reference tests; without them those tests fail with a message saying what to run.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "mds/core/error.h"
#include "mds/data/gpt2_bpe.h"
#include "mds/data/tokenizer.h"
#include "tokenizer_test_util.h"

using mds::data::GPT2BPETokenizer;

namespace {

using namespace tok_test;

// Empty when the data is there, else what is missing.
std::string missing_data() {
  return missing_files({"gpt2-vocab.json", "gpt2-merges.txt", "brown.jsonl"});
}

std::string missing_reference() {
  if (auto why = missing_data(); !why.empty()) return why;
  if (!fs::exists(fs::path(data_dir()) / "node_modules/gpt-3-encoder"))
    return "gpt-3-encoder not installed: run `bash scripts/prepare_data.sh`";
  if (std::system("node --version >/dev/null 2>&1") != 0) return "node not found on PATH";
  return "";
}

const GPT2BPETokenizer& gpt2() {
  static const GPT2BPETokenizer tok(data_dir() + "/gpt2-vocab.json",
                                    data_dir() + "/gpt2-merges.txt");
  return tok;
}

std::string reference_command() {
  return mds::strfmt("node '{}/tests/reference/gpt2_encode.js' '{}'", MDS_SOURCE_DIR, data_dir());
}

// The reference, one id array per non-blank line of a JSONL file.
std::vector<Ids> reference_ids(const fs::path& jsonl) {
  return run_reference(reference_command(), jsonl);
}

std::vector<Ids> reference_ids(const std::vector<std::string>& texts) {
  return reference_ids(write_jsonl(texts));
}

// The reference is slow (~15 s of node for Brown): its answer is kept beside the data and
// recomputed only when the input, the script or the installed package changes.
std::vector<Ids> cached_reference_ids(const fs::path& jsonl) {
  return cached_reference(reference_command(), jsonl, jsonl.string() + ".gpt2-reference-ids",
                          {jsonl, MDS_SOURCE_DIR "/tests/reference/gpt2_encode.js",
                           fs::path(data_dir()) / "node_modules/gpt-3-encoder"});
}

// A tiny synthetic GPT-2-format vocabulary: the 256 byte symbols (ids 0-255, ASCII printable
// bytes are their own symbol), <|endoftext|> = 256, then one token per merge.
using MergeList = std::vector<std::pair<std::string, std::string>>;

struct TinyVocab {
  fs::path vocab, merges;
  explicit TinyVocab(const MergeList& merge_list) {
    nlohmann::json v = nlohmann::json::object();
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const unsigned cp = printable ? b : 256 + n++;
      std::string sym;
      if (cp < 0x80) {
        sym.push_back(static_cast<char>(cp));
      } else {
        sym.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        sym.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      v[sym] = b;
    }
    v["<|endoftext|>"] = 256;
    std::string m = "#version: 0.2\n";
    for (const auto& [a, b] : merge_list) {
      if (!v.contains(a + b)) v[a + b] = static_cast<int>(v.size());
      m += a + " " + b + "\n";
    }
    vocab = temp_path("tiny-vocab.json");
    merges = temp_path("tiny-merges.txt");
    std::ofstream(vocab) << v.dump();
    std::ofstream(merges) << m;
  }
  int32_t id(const std::string& token) const {
    std::ifstream in(vocab);
    return nlohmann::json::parse(in).at(token).get<int32_t>();
  }
};

}  // namespace

TEST(GPT2BPE, VocabularyAndKnownIds) {
  TOK_REQUIRE(missing_data());
  const auto& tok = gpt2();
  EXPECT_EQ(tok.vocab_size(), 50257);
  EXPECT_EQ(tok.eod(), 50256);
  EXPECT_EQ(tok.encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(tok.encode(""), Ids{});
  // The end-of-document marker in text is ordinary text, as in Megatron: never the eod id.
  const Ids marker = tok.encode("<|endoftext|>");
  EXPECT_GT(marker.size(), 1u);
  EXPECT_EQ(std::count(marker.begin(), marker.end(), tok.eod()), 0);
  EXPECT_EQ(tok.decode({tok.eod()}), "<|endoftext|>");
  EXPECT_EQ(tok.token_bytes(220), " ");
  EXPECT_NE(user_error([&] { tok.decode({50257}); }).find("outside"), std::string::npos);
  EXPECT_NE(user_error([&] { tok.decode({-1}); }).find("outside"), std::string::npos);
}

TEST(GPT2BPE, BrownCorpusMatchesReference) {
  TOK_REQUIRE(missing_reference());
  const std::vector<std::string> texts = brown_texts();
  ASSERT_EQ(texts.size(), 500u);
  const std::vector<Ids> want = cached_reference_ids(fs::path(data_dir()) / "brown.jsonl");
  ASSERT_EQ(want.size(), texts.size());
  size_t tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    const Ids got = gpt2().encode(texts[i]);
    ASSERT_EQ(got, want[i]) << "Brown document " << i;
    ASSERT_EQ(gpt2().decode(got), texts[i]) << "Brown document " << i;
    tokens += got.size();
  }
  EXPECT_GT(tokens, 1000000u);
}

TEST(GPT2BPE, HardCasesMatchReference) {
  TOK_REQUIRE(missing_reference());
  const std::vector<std::string> cases = hard_cases();
  const std::vector<Ids> want = reference_ids(cases);
  ASSERT_EQ(want.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Ids got = gpt2().encode(cases[i]);
    EXPECT_EQ(got, want[i]) << "case " << i << ": " << nlohmann::json(cases[i]).dump();
    EXPECT_EQ(gpt2().decode(got), cases[i]) << "case " << i;
  }
}

// Words longer than the short-word loop's limit take the heap version of BPE: check it on realistic
// merges, letter runs cut from Brown text with the spaces removed (49 to ~600 bytes).
TEST(GPT2BPE, LongWordsMatchReference) {
  TOK_REQUIRE(missing_reference());
  std::string letters;
  const std::vector<std::string> texts = brown_texts();
  for (size_t d = 0; d < 5; ++d)
    for (char c : texts.at(d))
      if (std::isalpha(static_cast<unsigned char>(c))) letters.push_back(c);
  std::vector<std::string> words;
  size_t pos = 0;
  for (size_t len = 49; pos + len <= letters.size() && words.size() < 40; pos += len, len += 14)
    words.push_back((words.size() % 2 ? " " : "") + letters.substr(pos, len));
  ASSERT_EQ(words.size(), 40u);
  const std::vector<Ids> want = reference_ids(words);
  ASSERT_EQ(want.size(), words.size());
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(gpt2().encode(words[i]), want[i]) << words[i];
}

// Invalid UTF-8 is read as node reads it (each maximal invalid subpart -> U+FFFD), so encode
// agrees with the reference on the same bytes, and decode returns the repaired text.
TEST(GPT2BPE, InvalidUtf8EncodesAsReplacementCharacters) {
  TOK_REQUIRE(missing_reference());
  const std::vector<std::string> bad = {
      "abc\xff"
      "def",
      "\xc3",
      "\xc3(",
      "\xe2\x82",
      "\xe2\x82x",
      "\xf0\x9f\x98",
      "\xf0\x9f\x98 ok",
      "\xed\xa0\x80",
      "\xc0\xaf",
      "\xe0\x80\xaf",
      "\xf4\x90\x80\x80",
      "\xf8\x88\x80\x80\x80",
      "\x80\x80\x80",
      "caf\xe9 na\xefve",
      "ok \xf0\x9f\x98\x80 \xff\xfe"};
  // Written byte for byte (a JSON library would refuse the invalid bytes); no quotes or
  // backslashes occur in these strings.
  const fs::path in = temp_path("invalid.jsonl");
  {
    std::ofstream out(in, std::ios::binary);
    for (const auto& s : bad) out << "{\"text\":\"" << s << "\"}\n";
  }
  const std::vector<Ids> want = reference_ids(in);
  ASSERT_EQ(want.size(), bad.size());
  for (size_t i = 0; i < bad.size(); ++i) {
    const Ids got = gpt2().encode(bad[i]);
    EXPECT_EQ(got, want[i]) << "case " << i;
    EXPECT_EQ(gpt2().decode(got), mds::data::repair_utf8(bad[i])) << "case " << i;
  }
}

TEST(RepairUtf8, ReplacesMaximalInvalidSubparts) {
  using mds::data::repair_utf8;
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(repair_utf8("plain \xC3\xA9 \xF0\x9F\x98\x80"), "plain \xC3\xA9 \xF0\x9F\x98\x80");
  EXPECT_EQ(repair_utf8("\xC3("), r + "(");
  EXPECT_EQ(repair_utf8("\xF0\x9F\x98"), r);                  // truncated 4-byte: one subpart
  EXPECT_EQ(repair_utf8("\xED\xA0\x80"), r + r + r);          // a surrogate: no valid prefix
  EXPECT_EQ(repair_utf8("\xC0\xAF"), r + r);                  // overlong
  EXPECT_EQ(repair_utf8("\xF4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(repair_utf8(std::string("a\0b", 3)), std::string("a\0b", 3));
}

TEST(GPT2BPE, HugeInputsEncodeAndRoundTrip) {
  TOK_REQUIRE(missing_data());
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& s :
       {repeat("a", 1 << 20), repeat(" ", 1 << 20), repeat("!?", 1 << 19), repeat("7", 1 << 20),
        repeat("\xe4\xb8\xad", 1 << 18), repeat("ab ", 1 << 18), repeat(" \n", 1 << 19)}) {
    const Ids ids = gpt2().encode(s);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(gpt2().decode(ids), s);
  }
  // Linear-ish: ~7 MB of pathological text; quadratic BPE or regex would take minutes.
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20);
}

TEST(GPT2BPE, ConcurrentEncodeGivesSameIds) {
  TOK_REQUIRE(missing_data());
  std::vector<std::string> texts = brown_texts();
  texts.resize(120);
  for (auto& h : hard_cases()) texts.push_back(h);
  std::vector<Ids> want;
  for (const auto& t : texts) want.push_back(gpt2().encode(t));
  // A fresh tokenizer, so that the threads race to fill an empty word cache.
  const GPT2BPETokenizer tok(data_dir() + "/gpt2-vocab.json", data_dir() + "/gpt2-merges.txt");
  constexpr int kThreads = 4;
  std::vector<std::vector<Ids>> got(kThreads, std::vector<Ids>(texts.size()));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t k = 0; k < texts.size(); ++k) {
        const size_t i = (k + t * texts.size() / kThreads) % texts.size();  // rotated per thread
        got[t][i] = tok.encode(texts[i]);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (size_t i = 0; i < texts.size(); ++i) ASSERT_EQ(got[t][i], want[i]) << t << " " << i;
}

// GPT-2 merges every occurrence of the best pair in one pass before looking at the pairs that
// pass created. With "ab a" ranked above "a b", "abab" gives [ab, ab]; merging one occurrence at
// a time would give [aba, b]. Checked on the short-word loop and on the long-word heap.
TEST(GPT2BPE, MergesAllOccurrencesOfBestPairPerPass) {
  const TinyVocab v(MergeList{{"ab", "a"}, {"a", "b"}, {"b", "b"}, {"bb", "b"}});
  const GPT2BPETokenizer tok(v.vocab.string(), v.merges.string());
  const int32_t ab = v.id("ab"), bb = v.id("bb"), bbb = v.id("bbb"), b = v.id("b");
  EXPECT_EQ(tok.vocab_size(), 261);
  EXPECT_EQ(tok.eod(), 256);
  EXPECT_EQ(tok.encode("abab"), (Ids{ab, ab}));
  EXPECT_EQ(tok.encode(repeat("ab", 40)), Ids(40, ab));  // 80 bytes: the heap path
  // "bbbbb": (b,b) pass left to right -> [bb, bb, b]; then (bb,b) -> [bb, bbb].
  EXPECT_EQ(tok.encode("bbbbb"), (Ids{bb, bbb}));
  // 41 b's (short loop) -> 20 bb + b -> 19 bb + bbb; 51 b's (heap) -> 24 bb + bbb.
  for (int n : {41, 51}) {
    Ids want(n / 2 - 1, bb);
    want.push_back(bbb);
    EXPECT_EQ(tok.encode(repeat("b", n)), want) << n;
  }
  EXPECT_EQ(tok.encode("b"), Ids{b});
}

TEST(GPT2BPE, MissingOrCorruptFilesNameTheFlag) {
  const std::string nope = (fs::temp_directory_path() / "mds-no-such-file.json").string();
  const TinyVocab v(MergeList{{"a", "b"}});
  std::string e = user_error([&] { GPT2BPETokenizer t(nope, v.merges.string()); });
  EXPECT_NE(e.find("--vocab-file"), std::string::npos) << e;
  EXPECT_NE(e.find(nope), std::string::npos) << e;
  e = user_error([&] { GPT2BPETokenizer t(v.vocab.string(), nope); });
  EXPECT_NE(e.find("--merge-file"), std::string::npos) << e;

  const fs::path bad_json = temp_path("bad.json");
  std::ofstream(bad_json) << "{\"a\": 0,";
  e = user_error([&] { GPT2BPETokenizer t(bad_json.string(), v.merges.string()); });
  EXPECT_NE(e.find("--vocab-file"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;

  const fs::path bad_merges = temp_path("bad-merges.txt");
  std::ofstream(bad_merges) << "#version: 0.2\na b\nc d e\n";
  e = user_error([&] { GPT2BPETokenizer t(v.vocab.string(), bad_merges.string()); });
  EXPECT_NE(e.find("--merge-file"), std::string::npos) << e;
  EXPECT_NE(e.find("line 3"), std::string::npos) << e;

  std::ofstream(bad_merges) << "#version: 0.2\nq z\n";  // "qz" is not in the vocabulary
  e = user_error([&] { GPT2BPETokenizer t(v.vocab.string(), bad_merges.string()); });
  EXPECT_NE(e.find("--merge-file"), std::string::npos) << e;
}

TEST(TokenizerFactory, NamesMissingFlagsAndSupportedTypes) {
  using mds::data::build_tokenizer;
  using mds::data::TokenizerOptions;
  std::string e = user_error([] { build_tokenizer({"GPT2BPETokenizer", "", "m.txt", ""}); });
  EXPECT_NE(e.find("requires --vocab-file"), std::string::npos) << e;
  e = user_error([] { build_tokenizer({"GPT2BPETokenizer", "v.json", "", ""}); });
  EXPECT_NE(e.find("requires --merge-file"), std::string::npos) << e;
  e = user_error([] { build_tokenizer({"SentencePieceTokenizr", "", "", ""}); });
  EXPECT_NE(e.find("unknown --tokenizer-type 'SentencePieceTokenizr'"), std::string::npos) << e;
  EXPECT_NE(e.find("GPT2BPETokenizer"), std::string::npos) << e;

  const TinyVocab v(MergeList{{"a", "b"}});
  auto tok = build_tokenizer({"GPT2BPETokenizer", v.vocab.string(), v.merges.string(), ""});
  EXPECT_EQ(tok->encode("ab"), Ids{v.id("ab")});
  EXPECT_EQ(tok->eod(), 256);
}
