// The GPT-2 byte-level alphabet: every byte 0..255 is shown as one printable code point so that
// vocabularies can be stored as JSON text (= tokenizers' bytes_char / transformers'
// bytes_to_unicode). Printable ASCII and Latin-1 bytes map to themselves; the other 68 bytes map to
// U+0100.. in order.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace r1::tok {

// The code point that stands for `byte`.
char32_t ByteToChar(uint8_t byte);

// Byte-level text (UTF-8 of mapped code points) back to raw bytes; nullopt if some code point is
// not in the alphabet.
std::optional<std::string> ByteLevelToBytes(std::string_view mapped);

// Raw bytes to byte-level text.
std::string BytesToByteLevel(std::string_view bytes);

}  // namespace r1::tok
