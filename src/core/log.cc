#include "core/log.h"

#include <cstdio>

namespace r1 {
namespace {
LogLevel g_level = LogLevel::kInfo;

std::string VStrFormat(const char* fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string s(static_cast<size_t>(n > 0 ? n : 0), '\0');
  std::vsnprintf(s.data(), s.size() + 1, fmt, ap);
  return s;
}

void VLog(const char* fmt, va_list ap) {
  // One write per line, so lines from several threads do not interleave.
  const std::string line = "r1: " + VStrFormat(fmt, ap) + "\n";
  std::fputs(line.c_str(), stderr);
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level = level; }
LogLevel GetLogLevel() { return g_level; }

void LogInfo(const char* fmt, ...) {
  if (g_level < LogLevel::kInfo) return;
  va_list ap;
  va_start(ap, fmt);
  VLog(fmt, ap);
  va_end(ap);
}

void LogDebug(const char* fmt, ...) {
  if (g_level < LogLevel::kDebug) return;
  va_list ap;
  va_start(ap, fmt);
  VLog(fmt, ap);
  va_end(ap);
}

std::string StrFormat(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::string s = VStrFormat(fmt, ap);
  va_end(ap);
  return s;
}

}  // namespace r1
