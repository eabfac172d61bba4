// Unit tests of the tokenizer parts that need no real vocabulary: UTF-8 handling, the byte-level
// alphabet, NFC, split behaviours, the hand-written pattern matchers against PCRE2, BPE merging on
// hand-made tokenizers (and against a naive BPE), added-token flags, streaming, the R1 chat format
// and the reasoning parser.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "tests/tokenizer/test_data.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/known_patterns.h"
#include "tokenizer/nfc.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace r1::tok {
namespace {

using json = nlohmann::json;

TEST(Utf8, SanitizeReplacesMaximalSubparts) {
  EXPECT_EQ(SanitizeUtf8("abc"), "abc");
  EXPECT_EQ(SanitizeUtf8("a\x80z"), "a\uFFFDz");
  // A truncated 3-byte sequence is one maximal subpart -> one U+FFFD.
  EXPECT_EQ(SanitizeUtf8("\xE4\xBD"), "\uFFFD");
  // Surrogates (ED A0 80) and overlongs (C0 AF) are invalid byte by byte.
  EXPECT_EQ(SanitizeUtf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");
  EXPECT_EQ(SanitizeUtf8("\xC0\xAF"), "\uFFFD\uFFFD");
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98"), "\uFFFD");
  EXPECT_EQ(SanitizeUtf8("\xF0\x9F\x98\x80"), "\U0001F600");
  EXPECT_EQ(SanitizeUtf8("\xC2\x41"), "\uFFFDA");
}

TEST(Utf8, CompletePrefixHoldsBackUnfinishedCharacter) {
  EXPECT_EQ(CompleteUtf8Prefix("ab"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xF0\x9F"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xF0\x9F\x98\x80"), 5u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\xBD"), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a\x80"), 2u);      // invalid: release it (as U+FFFD)
  EXPECT_EQ(CompleteUtf8Prefix("a\xE4\x41"), 3u);  // already ill-formed
}

TEST(ByteLevel, Gpt2Alphabet) {
  EXPECT_EQ(ByteToChar('!'), U'!');
  EXPECT_EQ(ByteToChar(' '), U'\u0120');   // Ġ
  EXPECT_EQ(ByteToChar('\n'), U'\u010A');  // Ċ
  EXPECT_EQ(BytesToByteLevel(" t"), "\u0120t");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelToBytes(BytesToByteLevel(all)).value(), all);
  EXPECT_FALSE(ByteLevelToBytes("\u4E00").has_value());
}

TEST(Nfc, ComposesReordersAndKeepsStableText) {
  EXPECT_EQ(NfcNormalize("plain ascii"), "plain ascii");
  EXPECT_EQ(NfcNormalize("e\u0301"), "\u00E9");
  EXPECT_EQ(NfcNormalize("\u1100\u1161\u11A8"), "\uAC01");  // Hangul L V T
  EXPECT_EQ(NfcNormalize("A\u030A\u0301"), "\u01FA");
  EXPECT_EQ(NfcNormalize("q\u0307\u0323"), "q\u0323\u0307");  // canonical order
  EXPECT_EQ(NfcNormalize("\u212B"), "\u00C5");                // singleton Angstrom
  EXPECT_EQ(NfcNormalize("\u0915\u093C"), "\u0915\u093C");    // composition exclusion
  EXPECT_EQ(NfcNormalize("\u00E9\u0301"), "\u00E9\u0301");
  EXPECT_EQ(NfcNormalize("你好 e\u0301 世界"), "你好 \u00E9 世界");
}

std::vector<std::string> Pieces(const json& pre, std::string_view text) {
  auto pt = PreTokenizer::FromJson(pre);
  EXPECT_TRUE(pt.ok()) << pt.status().ToString();
  std::vector<std::string_view> pieces;
  std::deque<std::string> arena;
  pt->Split(text, &pieces, &arena);
  return {pieces.begin(), pieces.end()};
}

json SplitJson(const std::string& pattern, const std::string& behavior, bool invert = false,
               bool regex = false) {
  return {{"type", "Split"},
          {"pattern", {{regex ? "Regex" : "String", pattern}}},
          {"behavior", behavior},
          {"invert", invert}};
}

// = the examples in tokenizers' normalizer.rs split tests ("the-final--countdown" on '-').
TEST(PreTokenizer, SplitBehaviours) {
  const std::string s = "the-final--countdown";
  using V = std::vector<std::string>;
  EXPECT_EQ(Pieces(SplitJson("-", "Removed"), s), (V{"the", "final", "countdown"}));
  EXPECT_EQ(Pieces(SplitJson("-", "Isolated"), s), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(Pieces(SplitJson("-", "MergedWithPrevious"), s),
            (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(Pieces(SplitJson("-", "MergedWithNext"), s), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(Pieces(SplitJson("-", "Contiguous"), s), (V{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(Pieces(SplitJson("-", "Removed", true), s), (V{"-", "-", "-"}));
  EXPECT_EQ(Pieces(SplitJson("\\p{N}{1,3}", "Isolated", false, true), "a1234567b"),
            (V{"a", "123", "456", "7", "b"}));
  EXPECT_EQ(Pieces({{"type", "Digits"}, {"individual_digits", true}}, "a12b"),
            (V{"a", "1", "2", "b"}));
  EXPECT_EQ(Pieces({{"type", "Digits"}, {"individual_digits", false}}, "a12b"),
            (V{"a", "12", "b"}));
  EXPECT_EQ(Pieces({{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}},
                   "Hello world's"),
            (V{" Hello", " world", "'s"}));
}

// The hand-written matchers (KnownPattern) against PCRE2 on the same patterns: the test corpus
// and random strings drawn from characters at every class boundary the patterns care about.
TEST(PreTokenizer, KnownPatternsMatchPcre2) {
  const std::vector<std::string> patterns = {
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
      R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
      R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
      "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
      R"(\p{N}{1,3})",
      R"(\p{N})"};
  // Letters, marks, digits and numbers of several scripts, punctuation and symbols, every kind
  // of white space (U+FEFF too), controls, format, private-use and unassigned characters.
  const std::vector<std::string> palette = {
      "a", "Z", "s", "S", "t", "T", "r", "E", "v", "m", "l", "L", "d", "D", "'", "\"", "0", "7",
      " ", " ", " ", "\t", "\n", "\r", "\v", "\f", "\x01", "\x7f", ".", ",", "(", "`", "~", "_",
      "-", "$", "+", "é", "ß", "Ω", "я", "ا", "ह", "ि", "\u0301", "\u0308", "九", "一", "龥",
      "\u9fa6", "\u4dff", "あ", "\u3040", "ゟ", "゠", "ア", "ヿ", "\u3100", "한", "٣", "५", "Ⅷ",
      "½", "①", "。", "「", "」", "€", "©", "😀", "👍🏽", "\u200d", "\u200b", "\u00a0", "\u2000",
      "\u3000", "\ufeff", "\u2028", "\u0085", "\u180e", "\ue000", "\u0378", "\U0001F1FA", "🇸"};
  std::vector<std::string> texts = testing::ReadCorpus();
  std::mt19937 rng(11);
  for (int k = 0; k < 20000; ++k) {
    std::string t;
    const int len = static_cast<int>(rng() % 24);
    for (int c = 0; c < len; ++c) t += palette[rng() % palette.size()];
    texts.push_back(t);
  }
  std::vector<Span> want, got;
  for (const std::string& pattern : patterns) {
    auto pcre = Regex::Compile(pattern, /*allow_known=*/false);
    auto fast = Regex::Compile(pattern);
    ASSERT_TRUE(pcre.ok() && fast.ok()) << pattern;
    ASSERT_NE(KnownPattern::For(pattern), nullptr) << pattern;
    for (const std::string& t : texts) {
      (*pcre)->FindAll(t, &want);
      (*fast)->FindAll(t, &got);
      ASSERT_EQ(got.size(), want.size()) << pattern << " on " << json(t).dump();
      for (size_t m = 0; m < want.size(); ++m) {
        ASSERT_TRUE(got[m].begin == want[m].begin && got[m].end == want[m].end)
            << pattern << " on " << json(t).dump() << " match " << m;
      }
    }
  }
  EXPECT_EQ(KnownPattern::For(R"(\p{L}+)"), nullptr);
  EXPECT_EQ(KnownPattern::For("[一-龥\u3040-ゟ゠-ヿ]+"), nullptr);  // PCRE2 is faster there
}

TEST(PreTokenizer, UnsupportedTypesAreNamed) {
  auto pt = PreTokenizer::FromJson({{"type", "Metaspace"}});
  ASSERT_FALSE(pt.ok());
  EXPECT_NE(pt.status().message().find("Metaspace"), std::string::npos);
}

// A tiny byte-level tokenizer: merges h+e, l+l, he+ll, hell+o, and a few added tokens.
json TinyTokenizerJson() {
  json vocab = json::object();
  int id = 0;
  for (int b = 0; b < 256; ++b)
    vocab[BytesToByteLevel(std::string(1, static_cast<char>(b)))] = id++;
  for (const char* t : {"he", "ll", "hell", "hello"}) vocab[t] = id++;
  return {
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", json::array({"h e", json::array({"l", "l"}), "he ll", "hell o"})}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"added_tokens", json::array({{{"id", 300}, {"content", "<s>"}, {"special", true}},
                                    {{"id", 301}, {"content", "[L]"}, {"lstrip", true}},
                                    {{"id", 302}, {"content", "[R]"}, {"rstrip", true}},
                                    {{"id", 303}, {"content", "[W]"}, {"single_word", true}}})},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         json::array({{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}})},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {300}}}}}}}}};
}

std::unique_ptr<Tokenizer> Tiny() {
  auto t = Tokenizer::FromJson(TinyTokenizerJson(), nullptr, "tiny");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TEST(Tokenizer, MergesAndAddedTokenFlags) {
  auto t = Tiny();
  EXPECT_EQ(t->Encode("hello", false), (std::vector<int32_t>{259}));
  EXPECT_EQ(t->Encode("hello", true), (std::vector<int32_t>{300, 259}));
  EXPECT_EQ(t->Encode("hell", false), (std::vector<int32_t>{258}));
  EXPECT_EQ(t->Encode("x<s>y", false), (std::vector<int32_t>{'x', 300, 'y'}));
  EXPECT_EQ(t->Encode("a  [L]b", false), (std::vector<int32_t>{'a', 301, 'b'}));
  EXPECT_EQ(t->Encode("a[R] \n b", false), (std::vector<int32_t>{'a', 302, 'b'}));
  EXPECT_EQ(t->Encode("a [W] b", false), (std::vector<int32_t>{'a', ' ', 303, ' ', 'b'}));
  EXPECT_EQ(t->Encode("a[W]b", false).size(), 5u);  // not a single word: plain text
  EXPECT_EQ(t->Decode({300, 259, 'x'}, false), "<s>hellox");
  EXPECT_EQ(t->Decode({300, 259, 'x'}, true), "hellox");
  EXPECT_EQ(t->Decode({0xE4, 0xBD}, false), "\uFFFD");
  EXPECT_EQ(t->Decode({999999, 'a'}, false), "a");  // unknown ids are skipped
}

TEST(Tokenizer, LongPieceWithoutSpacesIsLinearish) {
  auto t = Tiny();
  std::string big;
  for (int i = 0; i < 200000; ++i) big += "hello";
  const auto ids = t->Encode(big, false);
  EXPECT_EQ(ids.size(), 200000u);
  EXPECT_EQ(t->Decode(ids), big);
}

using MergeRanks = std::map<std::pair<std::string, std::string>, int>;

// The plain definition of BPE merging: repeatedly merge the lowest-ranked adjacent pair, the
// leftmost on ties. Symbols are strings; `ranks` maps a pair to its rank.
std::vector<std::string> ReferenceBpe(const std::string& word, const MergeRanks& ranks) {
  std::vector<std::string> s;
  for (char c : word) s.emplace_back(1, c);
  while (s.size() > 1) {
    int best = INT32_MAX;
    size_t at = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      auto it = ranks.find({s[i], s[i + 1]});
      if (it != ranks.end() && it->second < best) {
        best = it->second;
        at = i;
      }
    }
    if (best == INT32_MAX) break;
    s[at] += s[at + 1];
    s.erase(s.begin() + at + 1);
  }
  return s;
}

// Random merge lists over a 3-letter alphabet, in a random order (so, like Llama-3's, a merge may
// use a token that only a later merge produces), against ReferenceBpe on words of every length
// class: the linear merge (<= 128 symbols), the bucketed one (longer), cached and uncached pieces.
TEST(Tokenizer, MergesMatchReferenceOnRandomMergeLists) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 10; ++trial) {
    json vocab = json::object();
    std::map<std::string, int> ids;
    for (int b = 0; b < 256; ++b) {
      const std::string raw(1, static_cast<char>(b));
      ids[raw] = b;
      vocab[BytesToByteLevel(raw)] = b;
    }
    std::vector<std::string> tokens = {"a", "b", "c"};
    std::vector<std::pair<std::string, std::string>> merges;
    std::set<std::pair<std::string, std::string>> seen;
    while (merges.size() < 60) {
      const std::string& x = tokens[rng() % tokens.size()];
      const std::string& y = tokens[rng() % tokens.size()];
      if (x.size() + y.size() > 12 || !seen.insert({x, y}).second) continue;
      merges.push_back({x, y});
      if (!ids.count(x + y)) {
        ids[x + y] = static_cast<int>(ids.size());
        vocab[BytesToByteLevel(x + y)] = ids[x + y];
        tokens.push_back(x + y);
      }
    }
    if (trial % 2 == 1) std::shuffle(merges.begin(), merges.end(), rng);
    json merge_list = json::array();
    MergeRanks ranks;
    for (size_t r = 0; r < merges.size(); ++r) {
      merge_list.push_back(BytesToByteLevel(merges[r].first) + " " +
                           BytesToByteLevel(merges[r].second));
      ranks.emplace(merges[r], static_cast<int>(r));
    }
    json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merge_list}}},
              {"pre_tokenizer",
               {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}},
              {"decoder", {{"type", "ByteLevel"}}}};
    auto t = Tokenizer::FromJson(j, nullptr, "random");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    for (int w = 0; w < 40; ++w) {
      const size_t len = 1 + rng() % (w % 3 == 0 ? 600 : 40);
      std::string word;
      for (size_t k = 0; k < len; ++k) word += "abc"[rng() % (w % 2 == 0 ? 3 : 2)];
      std::vector<int32_t> want;
      for (const std::string& sym : ReferenceBpe(word, ranks)) want.push_back(ids.at(sym));
      for (int pass = 0; pass < 2; ++pass) {  // the second pass hits the cache
        ASSERT_EQ((*t)->Encode(word, false), want) << "trial " << trial << " word " << word;
      }
    }
  }
}

TEST(Tokenizer, UnsupportedComponentsAreNamed) {
  json j = TinyTokenizerJson();
  j["normalizer"] = {{"type", "Lowercase"}};
  auto t = Tokenizer::FromJson(j, nullptr, "tiny.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(t.status().message().find("Lowercase"), std::string::npos);
  EXPECT_NE(t.status().message().find("tiny.json"), std::string::npos);
  j = TinyTokenizerJson();
  j["model"]["type"] = "WordPiece";
  EXPECT_FALSE(Tokenizer::FromJson(j, nullptr, "x").ok());
  j = TinyTokenizerJson();
  j["model"]["merges"].push_back("q z");  // "qz" is not in the vocabulary
  EXPECT_FALSE(Tokenizer::FromJson(j, nullptr, "x").ok());
}

TEST(StreamDecoder, NeverEmitsBrokenUtf8AndMatchesDecode) {
  auto t = Tiny();
  // "é😀" as single-byte tokens, with an added token in between and a cut-off character.
  const std::vector<int32_t> ids = {0xC3, 0xA9, 0xF0, 0x9F, 300, 0x98,
                                    0xF0, 0x9F, 0x98, 0x80, 0xE4};
  StreamDecoder s(*t);
  std::string all;
  for (int32_t id : ids) {
    const std::string chunk = s.Push(id);
    EXPECT_TRUE(IsValidUtf8(chunk));
    all += chunk;
  }
  all += s.Finish();
  EXPECT_EQ(all, t->Decode(ids));
  EXPECT_EQ(all, "\u00E9\uFFFD<s>\uFFFD\U0001F600\uFFFD");
}

TEST(ChatTemplate, R1Rendering) {
  auto msgs = ParseChatMessages(json::parse(R"([
    {"role": "system", "content": "S1"}, {"role": "system", "content": "S2"},
    {"role": "user", "content": "Q1"},
    {"role": "assistant", "content": "<think>\nr\n</think>\n\nA1"},
    {"role": "user", "content": "Q2"}])"));
  ASSERT_TRUE(msgs.ok());
  auto text = RenderR1Chat(*msgs, "<BOS>", true);
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(*text,
            "<BOS>S1\n\nS2<｜User｜>Q1<｜Assistant｜>\n\nA1<｜end▁of▁sentence｜><｜User｜>Q2"
            "<｜Assistant｜><think>\n");
  EXPECT_FALSE(ParseChatMessages(json::parse(R"([{"role": "robot", "content": "x"}])")).ok());
  EXPECT_FALSE(ParseChatMessages(json::parse(R"([{"role": "user", "content": null}])")).ok());
}

TEST(ChatTemplate, ReasoningParser) {
  ReasoningSplit r = ParseReasoning("Let me think.\n</think>\n\nThe answer is 4.");
  EXPECT_EQ(r.reasoning_content, "Let me think.\n");
  EXPECT_EQ(r.content, "\n\nThe answer is 4.");
  EXPECT_TRUE(r.reasoning_finished);
  r = ParseReasoning("<think>\nabc</think>x");
  EXPECT_EQ(r.reasoning_content, "\nabc");
  EXPECT_EQ(r.content, "x");
  r = ParseReasoning("cut off while thinking");  // no </think> yet
  EXPECT_EQ(r.reasoning_content, "cut off while thinking");
  EXPECT_EQ(r.content, "");
  EXPECT_FALSE(r.reasoning_finished);
}

}  // namespace
}  // namespace r1::tok
