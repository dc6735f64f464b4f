// SentencePieceTokenizer and Llama2Tokenizer: ids equal to Debian's python3-sentencepiece with
// Megatron's wrapper logic (tests/reference/sentencepiece_encode.py) on the Brown corpus and hard
// cases, with a Llama-2-style model trained on Brown by scripts/prepare_data.sh
// (data/brown-sp.model; no npm package ships a real tokenizer.model). Also decode, special tokens,
// errors.
#include <gtest/gtest.h>

#include <algorithm>

#include "mds/data/sentencepiece_tokenizer.h"
#include "mds/data/tokenizer.h"
#include "tokenizer_test_util.h"

using mds::data::SentencePieceFlavor;
using mds::data::SentencePieceTokenizer;
using namespace tok_test;

namespace {

std::string model() {
  return data_dir() + "/brown-sp.model";
}

std::string missing_reference() {
  if (auto why = missing_files({"brown-sp.model", "brown.jsonl"}); !why.empty()) return why;
  if (std::system("/usr/bin/python3 -c 'import sentencepiece' >/dev/null 2>&1") != 0)
    return "python3-sentencepiece not installed: run `bash scripts/setup.sh`";
  return "";
}

// Cached in the data dir (keyed by the input's hash; recomputed when the model, the script or
// the input changes): the reference pass over Brown costs as much as ours.
std::vector<Ids> reference(const char* flavor, const fs::path& jsonl) {
  return cached_reference(
      mds::strfmt("/usr/bin/python3 '{}/tests/reference/sentencepiece_encode.py' '{}' {}",
                  MDS_SOURCE_DIR, model(), flavor),
      jsonl, data_dir() + "/brown-sp.model." + flavor + "-reference-ids",
      {model(), MDS_SOURCE_DIR "/tests/reference/sentencepiece_encode.py"});
}

void expect_matches_reference(const SentencePieceTokenizer& tok, const char* flavor,
                              const std::vector<std::string>& texts) {
  const std::vector<Ids> want = reference(flavor, write_jsonl(texts));
  ASSERT_EQ(want.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i)
    ASSERT_EQ(tok.encode(texts[i]), want[i]) << flavor << " text " << i << ": " << texts[i];
}

}  // namespace

TEST(Llama2Tokenizer, BrownAndHardCasesMatchReference) {
  TOK_REQUIRE(missing_reference());
  const SentencePieceTokenizer tok(model(), SentencePieceFlavor::llama2);
  EXPECT_EQ(tok.vocab_size(), 8000);
  EXPECT_EQ(tok.bos(), 1);
  EXPECT_EQ(tok.eod(), 2);
  std::vector<std::string> texts = brown_texts();
  for (const auto& t : hard_cases()) texts.push_back(t);
  expect_matches_reference(tok, "llama2", texts);
}

TEST(SentencePieceTokenizer, BrownAndHardCasesMatchReference) {
  TOK_REQUIRE(missing_reference());
  const SentencePieceTokenizer tok(model(), SentencePieceFlavor::megatron);
  // <CLS> <SEP> <EOD> <MASK> <PAD> appended after the 8000 pieces; <s> and </s> are the model's.
  EXPECT_EQ(tok.vocab_size(), 8005);
  EXPECT_EQ(tok.eod(), 8002);
  // Brown's first 100 documents: the pieces come from the same library call as Llama2's (which
  // covers all of Brown); what differs is the special-token handling around it.
  std::vector<std::string> texts = brown_texts();
  texts.resize(std::min<size_t>(texts.size(), 100));
  for (const auto& t : hard_cases()) texts.push_back(t);
  texts.push_back("one<EOD>two<CLS><SEP>three <s>four</s><MASK><PAD>");
  texts.push_back("<EOD><EOD> x <EO D> <eod>");
  expect_matches_reference(tok, "megatron", texts);
}

TEST(SentencePieceTokenizer, DecodeInvertsEncodeAndWritesSpecialTokens) {
  TOK_REQUIRE(missing_files({"brown-sp.model"}));
  const SentencePieceTokenizer llama(model(), SentencePieceFlavor::llama2);
  // Byte fallback and no normalization: any valid UTF-8 comes back exactly (bos dropped).
  for (const std::string& t : hard_cases()) {
    // SentencePiece reads NUL as unknown and U+2581 as its own space marker.
    if (t.find('\0') != std::string::npos || t.find("\u2581") != std::string::npos) continue;
    EXPECT_EQ(llama.decode(llama.encode(t)), t);
  }
  const SentencePieceTokenizer mega(model(), SentencePieceFlavor::megatron);
  EXPECT_EQ(mega.decode(mega.encode("one<EOD>two")), "one <EOD> two");
  EXPECT_NE(user_error([&] { mega.decode({8005}); }).find("outside"), std::string::npos);
  EXPECT_NE(user_error([&] { llama.decode({-1}); }).find("outside"), std::string::npos);
}

TEST(SentencePieceTokenizer, FactoryRowsAndErrors) {
  mds::data::TokenizerOptions o;
  o.type = "Llama2Tokenizer";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("requires --tokenizer-model"),
            std::string::npos);
  o.tokenizer_model = "/nonexistent/tokenizer.model";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("file not found"),
            std::string::npos);
  o.tokenizer_model = MDS_SOURCE_DIR "/CMakeLists.txt";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("not a SentencePiece model"),
            std::string::npos);
  if (fs::exists(model())) {
    o.tokenizer_model = model();
    EXPECT_EQ(mds::data::build_tokenizer(o)->encode("The jury")[0], 1);
    o.type = "SentencePieceTokenizer";
    EXPECT_EQ(mds::data::build_tokenizer(o)->eod(), 8002);
  }
}
