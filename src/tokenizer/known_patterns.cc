#include "tokenizer/known_patterns.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <atomic>

#include "core/check.h"
#include "tokenizer/utf8.h"

namespace r1::tok {
namespace {

// The patterns, byte for byte as tokenizer.json (and BpeTrainer) write them.
// Llama-3; Qwen2 has \p{N} where Llama-3 has \p{N}{1,3}.
constexpr const char* kGpt4Digits3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3})"
    R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kGpt4Digit = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N})"
                                   R"(| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek-V3's third split; its \r and \n are the control characters themselves.
constexpr const char* kDeepSeekWords =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kDigits3 = R"(\p{N}{1,3})";
constexpr const char* kDigit = R"(\p{N})";
// Character class bits.
constexpr uint8_t kL = 1, kN = 2, kM = 4, kP = 8, kS = 16;
constexpr uint8_t kSpace = 32;  // [\s\x{FEFF}], what TranslatePattern makes of \s
constexpr uint8_t kKnown = 128;

// Classes of every code point, filled in on first sight. Relaxed atomics: threads that race on an
// entry compute and store the same value.
std::atomic<uint8_t> g_classes[0x110000];

uint8_t ProbeClasses(char32_t cp) {
  struct Probes {
    std::array<pcre2_code*, 6> code{};
    Probes() {
      const char* const patterns[6] = {R"(\p{L})", R"(\p{N})", R"(\p{M})",
                                       R"(\p{P})", R"(\p{S})", R"([\s\x{FEFF}])"};
      for (int k = 0; k < 6; ++k) {
        int err = 0;
        PCRE2_SIZE offset = 0;
        code[k] = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(patterns[k]), PCRE2_ZERO_TERMINATED,
                                PCRE2_UTF | PCRE2_UCP, &err, &offset, nullptr);
        R1_CHECK(code[k] != nullptr) << "cannot compile " << patterns[k];
      }
    }
  };
  struct MatchData {
    pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
    ~MatchData() { pcre2_match_data_free(md); }
  };
  static const Probes probes;
  thread_local MatchData data;
  uint8_t classes = kKnown;
  if (cp < 0xD800 || (cp > 0xDFFF && cp <= 0x10FFFF)) {
    std::string utf8;
    AppendUtf8(cp, &utf8);
    for (int k = 0; k < 6; ++k) {
      const int rc = pcre2_match(probes.code[k], reinterpret_cast<PCRE2_SPTR>(utf8.data()),
                                 utf8.size(), 0, PCRE2_ANCHORED, data.md, nullptr);
      if (rc > 0) classes |= static_cast<uint8_t>(1 << k);
    }
  }
  g_classes[cp].store(classes, std::memory_order_relaxed);
  return classes;
}

inline uint8_t ClassesOf(char32_t cp) {
  const uint8_t c = g_classes[cp].load(std::memory_order_relaxed);
  return c != 0 ? c : ProbeClasses(cp);
}

struct Char {
  char32_t cp;
  uint32_t len;
  uint8_t classes;
};

// Decoding for valid UTF-8 (the FindAll contract); malformed bytes still stay in bounds.
class Text {
  [[gnu::noinline]] Char AtMultibyte(size_t i) const {
    const uint8_t b = p_[i];
    char32_t cp;
    uint32_t len;
    if (b < 0xE0 && n_ - i >= 2) {
      cp = ((b & 0x1Fu) << 6) | (p_[i + 1] & 0x3Fu);
      len = 2;
    } else if (b < 0xF0 && n_ - i >= 3) {
      cp = ((b & 0x0Fu) << 12) | ((p_[i + 1] & 0x3Fu) << 6) | (p_[i + 2] & 0x3Fu);
      len = 3;
    } else if (n_ - i >= 4) {
      cp = ((b & 0x07u) << 18) | ((p_[i + 1] & 0x3Fu) << 12) | ((p_[i + 2] & 0x3Fu) << 6) |
           (p_[i + 3] & 0x3Fu);
      len = 4;
    } else {
      cp = kReplacementChar;
      len = 1;
    }
    if (cp > 0x10FFFF) cp = kReplacementChar;
    return {cp, len, ClassesOf(cp)};
  }

 public:
  explicit Text(std::string_view s)
      : p_(reinterpret_cast<const uint8_t*>(s.data())), n_(s.size()) {}
  size_t size() const { return n_; }
  uint8_t byte(size_t i) const { return p_[i]; }

  // The character at i; inline for ASCII, which is most of real text.
  [[gnu::always_inline]] Char At(size_t i) const {
    const uint8_t b = p_[i];
    if (b < 0x80) return {b, 1, ClassesOf(b)};
    return AtMultibyte(i);
  }
  // Bytes of the character at i, from its lead byte alone.
  size_t LengthAt(size_t i) const {
    const uint8_t b = p_[i];
    const size_t len = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    return std::min(len, n_ - i);
  }

  // End of the run, from i, of characters having some class in `any`.
  size_t RunOf(size_t i, uint8_t any) const {
    while (i < n_) {
      const Char c = At(i);
      if ((c.classes & any) == 0) break;
      i += c.len;
    }
    return i;
  }
  // End of the run, from i, of characters having no class in `none`.
  size_t RunOfNot(size_t i, uint8_t none) const {
    while (i < n_) {
      const Char c = At(i);
      if ((c.classes & none) != 0) break;
      i += c.len;
    }
    return i;
  }
  size_t NewlinesFrom(size_t i) const {
    while (i < n_ && (p_[i] == '\r' || p_[i] == '\n')) ++i;
    return i;
  }

 private:
  const uint8_t* p_;
  size_t n_;
};

bool IsNewline(char32_t c) { return c == '\r' || c == '\n'; }

// \s*[\r\n]+|\s+(?!\S)|\s+ at i, where the character at i is white space. Returns the match end.
size_t MatchSpaces(const Text& t, size_t i) {
  size_t end = i, last = i, after_newline = 0;
  int count = 0;
  while (end < t.size()) {
    const Char c = t.At(end);
    if ((c.classes & kSpace) == 0) break;
    last = end;
    end += c.len;
    if (IsNewline(c.cp)) after_newline = end;
    ++count;
  }
  // \s*[\r\n]+ backtracks to the run's last newline.
  if (after_newline != 0) return after_newline;
  // \s+(?!\S) takes the whole run at the end of the text, else all but its last character
  // (which needs two of them); a single one falls to \s+.
  if (end == t.size() || count == 1) return end;
  return last;
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d) after the apostrophe at i - 1: the suffix length, or 0.
size_t ContractionAt(const Text& t, size_t i) {
  if (i >= t.size()) return 0;
  const auto lower = [&](size_t k) { return static_cast<char>(t.byte(k) | 0x20); };
  // b | 0x20 is a lower-case ASCII letter only for that letter and its upper case.
  const char c = lower(i);
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 1;
  if (i + 1 < t.size()) {
    const char d = lower(i + 1);
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 2;
  }
  return 0;
}

size_t MatchDigits(const Text& t, size_t i, int max_digits) {
  size_t end = i;
  for (int d = 0; d < max_digits && end < t.size(); ++d) {
    const Char c = t.At(end);
    if ((c.classes & kN) == 0) break;
    end += c.len;
  }
  return end;
}

// Llama-3 / Qwen2 at i (max_digits 3 or 1):
//   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//   \s*[\r\n]+|\s+(?!\S)|\s+
// Alternatives in order, the first that matches wins. Returns the match end, or i for none.
size_t MatchGpt4(const Text& t, size_t i, int max_digits) {
  const Char c0 = t.At(i);
  const size_t i1 = i + c0.len;
  if (c0.cp == '\'') {
    if (const size_t n = ContractionAt(t, i1)) return i1 + n;
  }
  if (c0.classes & kL) return t.RunOf(i1, kL);
  if (i1 < t.size() && (c0.classes & kN) == 0 && !IsNewline(c0.cp)) {
    const Char c1 = t.At(i1);
    if (c1.classes & kL) return t.RunOf(i1 + c1.len, kL);
  }
  if (c0.classes & kN) return MatchDigits(t, i, max_digits);
  // ' ' is white space, so the optional space only ever helps when it is taken.
  const size_t p = c0.cp == ' ' ? i1 : i;
  if (p < t.size()) {
    const Char c = t.At(p);
    if ((c.classes & (kSpace | kL | kN)) == 0) {
      return t.NewlinesFrom(t.RunOfNot(p + c.len, kSpace | kL | kN));
    }
  }
  if (c0.classes & kSpace) return MatchSpaces(t, i);
  return i;
}

bool IsAsciiPunct(char32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}
bool IsAsciiLetter(uint8_t c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

// DeepSeek-V3 at i:
//   [!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+|
//   ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
size_t MatchDeepSeek(const Text& t, size_t i) {
  const Char c0 = t.At(i);
  const size_t i1 = i + c0.len;
  if (IsAsciiPunct(c0.cp) && i1 < t.size() && IsAsciiLetter(t.byte(i1))) {
    size_t end = i1 + 1;
    while (end < t.size() && IsAsciiLetter(t.byte(end))) ++end;
    return end;
  }
  // With c0 in [\p{L}\p{M}] the optional class either takes it (when c0 is a mark) or not; the
  // run ends at the same place either way.
  if (c0.classes & (kL | kM)) return t.RunOf(i1, kL | kM);
  if (i1 < t.size() && (c0.classes & (kL | kP | kS)) == 0 && !IsNewline(c0.cp)) {
    const Char c1 = t.At(i1);
    if (c1.classes & (kL | kM)) return t.RunOf(i1 + c1.len, kL | kM);
  }
  const size_t p = c0.cp == ' ' ? i1 : i;
  if (p < t.size()) {
    const Char c = t.At(p);
    if (c.classes & (kP | kS)) return t.NewlinesFrom(t.RunOf(p + c.len, kP | kS));
  }
  if (c0.classes & kSpace) return MatchSpaces(t, i);
  return i;
}

bool MaybeDigit(uint8_t b) { return b >= 0x80 || (b >= '0' && b <= '9'); }
}  // namespace

std::unique_ptr<KnownPattern> KnownPattern::For(const std::string& pattern) {
  static const std::pair<const char*, Kind> kKnownPatterns[] = {
      {kGpt4Digits3, Kind::kGpt4Digits3},
      {kGpt4Digit, Kind::kGpt4Digit},
      {kDeepSeekWords, Kind::kDeepSeekWords},
      {kDigits3, Kind::kDigits3},
      {kDigit, Kind::kDigit}};
  for (const auto& [text, kind] : kKnownPatterns) {
    if (pattern == text) return std::unique_ptr<KnownPattern>(new KnownPattern(kind));
  }
  return nullptr;
}

void KnownPattern::FindAll(std::string_view text, std::vector<Span>* out) const {
  out->clear();
  const Text t(text);
  // Matches left to right. `maybe_start` lets the digit patterns skip bytes that cannot start a
  // match; such a byte is ASCII, so the scan stays on character boundaries.
  auto scan = [&](auto maybe_start, auto match) {
    for (size_t i = 0; i < t.size();) {
      while (i < t.size() && !maybe_start(t.byte(i))) ++i;
      if (i == t.size()) break;
      const size_t end = match(i);
      if (end > i) {
        out->push_back({i, end});
        i = end;
      } else {
        i += t.LengthAt(i);  // no match starts here
      }
    }
  };
  const auto any = [](uint8_t) { return true; };
  switch (kind_) {
    case Kind::kGpt4Digits3:
      return scan(any, [&](size_t i) { return MatchGpt4(t, i, 3); });
    case Kind::kGpt4Digit:
      return scan(any, [&](size_t i) { return MatchGpt4(t, i, 1); });
    case Kind::kDeepSeekWords:
      return scan(any, [&](size_t i) { return MatchDeepSeek(t, i); });
    case Kind::kDigits3:
      return scan(MaybeDigit, [&](size_t i) { return MatchDigits(t, i, 3); });
    case Kind::kDigit:
      return scan(MaybeDigit, [&](size_t i) { return MatchDigits(t, i, 1); });
  }
}

}  // namespace r1::tok
