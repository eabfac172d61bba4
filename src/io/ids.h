// Token-id files: whitespace-separated decimal integers (`.ids`).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace r1::io {

// Parses ids; anything that is not a non-negative integer below 2^31 is an error naming the
// file and the 1-based token position.
Result<std::vector<int32_t>> ParseIds(const std::string& text, const std::string& source);
Result<std::vector<int32_t>> ReadIdsFile(const std::string& path);

}  // namespace r1::io
