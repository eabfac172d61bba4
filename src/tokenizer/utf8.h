// UTF-8 helpers shared by the tokenizer: decoding one code point, replacing invalid sequences the
// way the references do, and finding where a byte stream can be cut without splitting a character.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace r1::tok {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Appends the UTF-8 encoding of `cp` (must be a valid scalar value) to `out`.
void AppendUtf8(char32_t cp, std::string* out);

// Decodes the code point starting at `s[*pos]` and advances *pos past it. Returns -1 (and advances
// past the maximal invalid subpart) when the bytes there are not well-formed UTF-8.
int32_t DecodeUtf8(std::string_view s, size_t* pos);

// Length of the longest prefix of `s[pos..]` that forms one well-formed character or the maximal
// subpart of an ill-formed one (Unicode §3.9 "U+FFFD substitution of maximal subparts", which is
// what WHATWG TextDecoder, Rust's from_utf8_lossy and Python's errors="replace" all do).
size_t Utf8SequenceLength(std::string_view s, size_t pos, bool* valid);

bool IsValidUtf8(std::string_view s);

// Every ill-formed subsequence replaced by U+FFFD, as in the references: the result is valid UTF-8
// and equals `s` when `s` already is.
std::string SanitizeUtf8(std::string_view s);

// The number of leading bytes of `s` that can be emitted now: everything except a trailing,
// incomplete but so-far well-formed sequence (at most 3 bytes) that later bytes may complete.
size_t CompleteUtf8Prefix(std::string_view s);

}  // namespace r1::tok
