// ChoiceText: stop strings that span tokens are cut exactly and never sent in part; the streamed
// reasoning/content split equals tok::ParseReasoning of the whole text; streaming in pieces gives
// the same result as one piece.
#include <gtest/gtest.h>

#include "common/command.h"

#include <filesystem>

#include "core/check.h"
#include "serve/choice_text.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/chat_template.h"

namespace r1::serve {
namespace {

const tok::Tokenizer& TestTokenizer() {
  static std::unique_ptr<tok::Tokenizer> t = [] {
    tok::BpeTrainerOptions o;
    o.vocab_size = 400;
    o.progress = false;
    auto trainer = tok::BpeTrainer::Create(o);
    R1_CHECK(trainer.ok());
    for (int i = 0; i < 100; ++i)
      (*trainer)->AddText("the quick brown fox jumps over the lazy dog; thinking about " + std::to_string(i) + "\n");
    auto bpe = (*trainer)->Train();
    R1_CHECK(bpe.ok());
    const std::string dir = test_util::UniqueTempPath("r1_choice_text_tok");
    R1_CHECK(tok::WriteTrainedTokenizer(*bpe, dir).ok());
    auto tk = tok::Tokenizer::Load(dir);
    R1_CHECK(tk.ok()) << tk.status().ToString();
    std::filesystem::remove_all(dir);
    return std::move(tk).value();
  }();
  return *t;
}

struct Streamed {
  std::string reasoning, content;
  bool stopped;
  std::vector<TextDelta> deltas;
};

Streamed Stream(const std::string& text, const std::vector<std::string>& stop, bool split) {
  const tok::Tokenizer& t = TestTokenizer();
  ChoiceText c(t, stop, split);
  Streamed r;
  for (int32_t id : t.Encode(text, false)) {
    r.deltas.push_back(c.Push(id));
    if (c.stopped()) break;
  }
  r.deltas.push_back(c.Finish());
  for (const TextDelta& d : r.deltas) {
    r.reasoning += d.reasoning;
    r.content += d.content;
  }
  r.stopped = c.stopped();
  return r;
}

TEST(ChoiceText, SplitMatchesParseReasoning) {
  for (const std::string text : {"the fox thinks</think>\n\nthe answer", "<think>\nquick</think>dog",
                                 "  <think>lazy</think>", "no end of thinking", "</think>only answer", "",
                                 "the <thi", "a </th", "<think>"}) {
    const Streamed r = Stream(text, {}, true);
    const tok::ReasoningSplit want = tok::ParseReasoning(text);
    EXPECT_EQ(r.reasoning, want.reasoning_content) << text;
    EXPECT_EQ(r.content, want.content) << text;
  }
}

TEST(ChoiceText, ReasoningThenContentOrder) {
  const Streamed r = Stream("the quick fox</think>the lazy dog", {}, true);
  bool seen_content = false;
  for (const TextDelta& d : r.deltas) {
    if (seen_content) {
      EXPECT_TRUE(d.reasoning.empty());
    }
    seen_content |= !d.content.empty();
  }
  EXPECT_TRUE(seen_content);
}

TEST(ChoiceText, StopStringsAcrossTokens) {
  const std::string text = "the quick brown fox jumps over the lazy dog";
  for (const std::string stop : {"brown", "k br", "x j", "dog", "the", "zzz", "g"}) {
    const Streamed r = Stream(text, {stop}, false);
    const size_t at = text.find(stop);
    EXPECT_EQ(r.content, text.substr(0, at)) << stop;
    EXPECT_EQ(r.stopped, at != std::string::npos) << stop;
    // No delta ever carried text past the cut.
    std::string sent;
    for (const TextDelta& d : r.deltas) {
      sent += d.content;
      EXPECT_EQ(text.compare(0, sent.size(), sent), 0) << stop;
    }
  }
  // The earliest of several stop strings wins, and it may sit inside the reasoning.
  const Streamed r = Stream("the fox thinks</think>the lazy dog", {"lazy", "thinks"}, true);
  EXPECT_EQ(r.reasoning, "the fox ");
  EXPECT_EQ(r.content, "");
}

TEST(ChoiceText, CountsReasoningTokens) {
  const tok::Tokenizer& t = TestTokenizer();
  ChoiceText c(t, {}, true);
  const std::vector<int32_t> a = t.Encode("the quick fox", false), b = t.Encode("</think>", false),
                             d = t.Encode("dog", false);
  ASSERT_EQ(b.size(), 1u);  // an added token
  for (int32_t id : a) (void)c.Push(id);
  (void)c.Push(b[0]);
  for (int32_t id : d) (void)c.Push(id);
  EXPECT_EQ(c.reasoning_tokens(), static_cast<int64_t>(a.size() + 1));
  EXPECT_EQ(c.tokens(), static_cast<int64_t>(a.size() + 1 + d.size()));
}

TEST(ChoiceText, PartialSuffix) {
  EXPECT_EQ(PartialSuffix("abc</th", "</think>"), 4u);
  EXPECT_EQ(PartialSuffix("abc", "</think>"), 0u);
  EXPECT_EQ(PartialSuffix("</think>", "</think>"), 0u);  // a whole match is not a partial one
  EXPECT_EQ(PartialSuffix("ab", ""), 0u);
}

}  // namespace
}  // namespace r1::serve
