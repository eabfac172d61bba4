#include "tokenizer/utf8.h"

#include <cstring>

namespace r1::tok {

void AppendUtf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

// Table 3-7 of the Unicode standard: the valid range of the second byte depends on the first.
bool SecondByteOk(uint8_t lead, uint8_t b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

int SequenceBytes(uint8_t lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;  // 0x80..0xC1, 0xF5..0xFF never start a character
}

}  // namespace

size_t Utf8SequenceLength(std::string_view s, size_t pos, bool* valid) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const uint8_t lead = p[pos];
  const int need = SequenceBytes(lead);
  if (need == 0) {
    *valid = false;
    return 1;
  }
  size_t n = 1;
  for (; n < static_cast<size_t>(need); ++n) {
    if (pos + n >= s.size()) {
      *valid = false;
      return n;
    }
    const uint8_t b = p[pos + n];
    const bool ok = n == 1 ? SecondByteOk(lead, b) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      *valid = false;
      return n;
    }
  }
  *valid = true;
  return n;
}

int32_t DecodeUtf8(std::string_view s, size_t* pos) {
  bool valid = false;
  const size_t n = Utf8SequenceLength(s, *pos, &valid);
  const auto* p = reinterpret_cast<const uint8_t*>(s.data()) + *pos;
  *pos += n;
  if (!valid) return -1;
  switch (n) {
    case 1:
      return p[0];
    case 2:
      return ((p[0] & 0x1F) << 6) | (p[1] & 0x3F);
    case 3:
      return ((p[0] & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    default:
      return ((p[0] & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F);
  }
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    // Eight ASCII bytes at a time: real text is mostly ASCII.
    if (i + 8 <= s.size()) {
      uint64_t word;
      std::memcpy(&word, s.data() + i, 8);
      if ((word & 0x8080808080808080ULL) == 0) {
        i += 8;
        continue;
      }
    }
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    bool valid = false;
    i += Utf8SequenceLength(s, i, &valid);
    if (!valid) return false;
  }
  return true;
}

std::string SanitizeUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    bool valid = false;
    const size_t n = Utf8SequenceLength(s, i, &valid);
    if (valid) {
      out.append(s.substr(i, n));
    } else {
      AppendUtf8(kReplacementChar, &out);
    }
    i += n;
  }
  return out;
}

size_t CompleteUtf8Prefix(std::string_view s) {
  // Only the last up-to-3 bytes can be an unfinished character.
  const size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    const auto lead = static_cast<uint8_t>(s[i]);
    const int need = SequenceBytes(lead);
    if (need <= 1 || i + need <= s.size()) continue;
    // A sequence starting here would run past the end: is what we have so far well-formed?
    bool valid = false;
    const size_t n = Utf8SequenceLength(s, i, &valid);
    if (i + n == s.size()) return i;  // a well-formed prefix cut by the end: hold it back
  }
  return s.size();
}

}  // namespace r1::tok
