// NullTokenizer: Megatron's semantics (ids in, same ids out, eod = --vocab-size, vocab one
// larger), the errors users see, and the factory row that needs --vocab-size.
#include <gtest/gtest.h>

#include "mds/data/null_tokenizer.h"
#include "mds/data/tokenizer.h"
#include "tokenizer_test_util.h"

using mds::data::NullTokenizer;
using tok_test::Ids;
using tok_test::user_error;

TEST(NullTokenizer, IdsRoundTripAndEodIsVocabSize) {
  const NullTokenizer tok(1000);
  EXPECT_EQ(tok.vocab_size(), 1001);
  EXPECT_EQ(tok.eod(), 1000);
  EXPECT_EQ(tok.encode("5 17 3"), (Ids{5, 17, 3}));
  EXPECT_EQ(tok.encode(" 0\t999\n1000  +7 "), (Ids{0, 999, 1000, 7}));
  EXPECT_EQ(tok.encode(""), Ids{});
  EXPECT_EQ(tok.encode(" \n "), Ids{});
  EXPECT_EQ(tok.decode({5, 17, 3}), "5 17 3");
  EXPECT_EQ(tok.decode({}), "");
}

TEST(NullTokenizer, RejectsWordsAndIdsOutsideTheVocabulary) {
  const NullTokenizer tok(1000);
  EXPECT_NE(user_error([&] { tok.encode("1 2 x3"); }).find("'x3' is not an integer"),
            std::string::npos);
  EXPECT_NE(user_error([&] { tok.encode("1 2.5"); }).find("not an integer"), std::string::npos);
  EXPECT_NE(user_error([&] { tok.encode("1001"); }).find("outside [0, 1000]"), std::string::npos);
  EXPECT_NE(user_error([&] { tok.encode("-1"); }).find("outside"), std::string::npos);
  EXPECT_NE(user_error([&] { tok.encode("99999999999999999999"); }).find("not an integer"),
            std::string::npos);
  EXPECT_NE(user_error([&] { tok.decode({1001}); }).find("outside"), std::string::npos);
  EXPECT_NE(user_error([] { NullTokenizer(0); }).find("--vocab-size"), std::string::npos);
}

TEST(NullTokenizer, FactoryNeedsVocabSizeAndLargeVocabsWriteInt32) {
  mds::data::TokenizerOptions o;
  o.type = "NullTokenizer";
  EXPECT_NE(user_error([&] { mds::data::build_tokenizer(o); }).find("requires --vocab-size"),
            std::string::npos);
  o.vocab_size = 128256;
  const auto tok = mds::data::build_tokenizer(o);
  EXPECT_EQ(tok->vocab_size(), 128257);
  EXPECT_EQ(tok->encode("128000 42"), (Ids{128000, 42}));
}
