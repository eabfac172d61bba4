// The text of one generated choice as an API streams it: token ids → UTF-8-safe text
// (tok::StreamDecoder) → cut at the first stop string (which is not sent, as OpenAI does) → split
// into DeepSeek's `reasoning_content` (up to "</think>") and `content`.
//
// Text that might still turn into a stop string or a "</think>" is held back until the next
// token decides, so a stream never sends text it later has to take back; Finish() releases what
// is left. The concatenated deltas equal the non-streamed answer, which is built the same way.
//
// Reasoning split: the R1 generation prompt ends in "<think>\n", so a completion starts inside
// the reasoning; a leading "<think>" (after optional whitespace) is dropped, as
// tok::ParseReasoning does, and everything after the first "</think>" is content.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace r1::serve {

struct TextDelta {
  std::string reasoning;  // new reasoning_content
  std::string content;    // new content
  bool empty() const { return reasoning.empty() && content.empty(); }
};

class ChoiceText {
 public:
  // split_reasoning false: everything is content (/v1/completions).
  ChoiceText(const tok::Tokenizer& tokenizer, std::vector<std::string> stop, bool split_reasoning);

  // Adds one generated token. Once a stop string has matched, stopped() is true and later
  // tokens are ignored.
  TextDelta Push(int32_t id);
  // The end of the generation: releases held-back text.
  TextDelta Finish();

  bool stopped() const { return stopped_; }
  // Tokens pushed while inside the reasoning (the "</think>" token included), and all pushed.
  int64_t reasoning_tokens() const { return reasoning_tokens_; }
  int64_t tokens() const { return tokens_; }

 private:
  // Passes text that is clear of stop strings to the reasoning splitter.
  void Release(const std::string& text, bool final, TextDelta* out);
  void Split(bool final, TextDelta* out);

  tok::StreamDecoder decoder_;
  std::vector<std::string> stop_;
  bool split_;
  std::string pending_;   // decoded text not yet checked against the stop strings
  std::string split_buf_; // stop-free text not yet routed to reasoning/content
  enum class Phase { kStart, kReasoning, kContent } phase_;
  bool stopped_ = false;
  bool finished_ = false;
  int64_t reasoning_tokens_ = 0, tokens_ = 0;
};

// The length of the longest suffix of `text` that is a proper prefix of `pattern`.
size_t PartialSuffix(const std::string& text, const std::string& pattern);

}  // namespace r1::serve
