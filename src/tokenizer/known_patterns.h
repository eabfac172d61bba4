// Hand-written matchers for the pre-tokenizer regexes of the supported families: Llama-3's,
// Qwen2/2.5/3's, and DeepSeek-V3's digit and word splits (also as our trainer writes them, with
// either digit rule; V3's CJK split stays on PCRE2, whose literal-range search is fast). For these
// exact patterns they give the matches PCRE2 gives, several times faster: most characters are
// ASCII, and every class test is one table load instead of a Unicode property lookup inside the
// regex engine.
//
// Code points are classified (\p{L}, \p{N}, \p{M}, \p{P}, \p{S}, and \s as TranslatePattern
// extends it) by asking PCRE2 itself, once per code point, so the Unicode data is exactly PCRE2's.
// Any other pattern is left to PCRE2. tests/tokenizer checks every matcher against PCRE2.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/regex.h"

namespace r1::tok {

class KnownPattern {
 public:
  // The matcher for `pattern` (as written in tokenizer.json, before TranslatePattern), or null
  // when it is not one of the known patterns.
  static std::unique_ptr<KnownPattern> For(const std::string& pattern);

  // = Regex::FindAll for the pattern.
  void FindAll(std::string_view text, std::vector<Span>* out) const;

 private:
  enum class Kind { kGpt4Digits3, kGpt4Digit, kDeepSeekWords, kDigits3, kDigit };
  explicit KnownPattern(Kind kind) : kind_(kind) {}
  Kind kind_;
};

}  // namespace r1::tok
