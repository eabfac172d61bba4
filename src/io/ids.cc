#include "io/ids.h"

#include <cctype>

#include "core/file.h"

namespace r1::io {

Result<std::vector<int32_t>> ParseIds(const std::string& text, const std::string& source) {
  std::vector<int32_t> ids;
  size_t i = 0;
  const size_t n = text.size();
  while (true) {
    while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i == n) break;
    const size_t start = i;
    int64_t v = 0;
    while (i < n && !std::isspace(static_cast<unsigned char>(text[i]))) {
      const char ch = text[i];
      if (ch < '0' || ch > '9' || v > (int64_t{1} << 31)) {
        size_t end = start;
        while (end < n && !std::isspace(static_cast<unsigned char>(text[end])) && end - start < 32) ++end;
        return InvalidArgument(source + ": token " + std::to_string(ids.size() + 1) + " is \"" +
                               text.substr(start, end - start) + "\", not a non-negative integer id");
      }
      v = v * 10 + (ch - '0');
      ++i;
    }
    if (v >= (int64_t{1} << 31))
      return InvalidArgument(source + ": token " + std::to_string(ids.size() + 1) + " is out of range");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

Result<std::vector<int32_t>> ReadIdsFile(const std::string& path) {
  R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseIds(text, path);
}

}  // namespace r1::io
