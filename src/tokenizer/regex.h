// A compiled PCRE2 pattern (UTF + UCP, JIT) for the pre-tokenizer splits, with the small rewrites
// that make Hugging Face patterns (written for Rust's onig) match the way the references do.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace r1::tok {

struct Span {
  size_t begin = 0;
  size_t end = 0;
};

class Regex {
 public:
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Compiles `pattern`; the error names the pattern and the offset PCRE2 complained about. The
  // pre-tokenizer patterns of the supported families then run on hand-written matchers
  // (KnownPattern) unless `allow_known` is false.
  static Result<std::unique_ptr<Regex>> Compile(const std::string& pattern,
                                                bool allow_known = true);
  // A pattern that matches `literal` exactly.
  static Result<std::unique_ptr<Regex>> Literal(const std::string& literal);

  // Every non-overlapping match in `text` (valid UTF-8), left to right. Empty matches are skipped
  // (the scan moves on by one character), as JavaScript's matchAll and Rust's find_iter do.
  void FindAll(std::string_view text, std::vector<Span>* out) const;

  const std::string& pattern() const { return pattern_; }

 private:
  Regex() = default;
  std::string pattern_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rewrites a tokenizer.json pattern for PCRE2: `(?i:'s|'t|…)` is spelled out without the case
// flag (Unicode case folding would also accept U+017F "ſ" and U+212A, which the references do
// not), and `\s`/`\S` gain U+FEFF, which the JavaScript reference counts as white space.
std::string TranslatePattern(const std::string& pattern);

}  // namespace r1::tok
