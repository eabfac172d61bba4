// Unicode Normalization Form C (canonical decomposition, then canonical composition), the
// `NFC` normalizer of Qwen2-family tokenizers. Tables are generated from the Unicode Character
// Database (gen_unicode_tables.py); text that is already NFC — all of ASCII, most real text —
// is detected by a quick check and copied.
#pragma once

#include <string>
#include <string_view>

namespace r1::tok {

// `text` must be valid UTF-8.
std::string NfcNormalize(std::string_view text);

// The Unicode version of the tables.
const char* NfcUnicodeVersion();

}  // namespace r1::tok
