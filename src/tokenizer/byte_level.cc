#include "tokenizer/byte_level.h"

#include <array>

#include "tokenizer/utf8.h"

namespace r1::tok {
namespace {

struct Tables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // code points < 324 cover the whole alphabet
  Tables() {
    to_byte.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_char[b] = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + extra++);
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables t;
  return t;
}

}  // namespace

char32_t ByteToChar(uint8_t byte) { return GetTables().to_char[byte]; }

std::optional<std::string> ByteLevelToBytes(std::string_view mapped) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(mapped.size());
  for (size_t i = 0; i < mapped.size();) {
    const int32_t cp = DecodeUtf8(mapped, &i);
    if (cp < 0 || cp >= static_cast<int32_t>(t.to_byte.size()) || t.to_byte[cp] < 0) {
      return std::nullopt;
    }
    out.push_back(static_cast<char>(t.to_byte[cp]));
  }
  return out;
}

std::string BytesToByteLevel(std::string_view bytes) {
  const Tables& t = GetTables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) AppendUtf8(t.to_char[b], &out);
  return out;
}

}  // namespace r1::tok
