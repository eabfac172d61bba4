// Logging and progress go to stderr (stdout is reserved for results and --json output).
#pragma once

#include <chrono>
#include <cstdarg>
#include <string>

namespace r1 {

enum class LogLevel { kQuiet = 0, kInfo = 1, kDebug = 2 };
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

// printf-style line on stderr, prefixed by "r1: ".
void LogInfo(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void LogDebug(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

std::string StrFormat(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// Seconds since construction, monotonic.
class Timer {
 public:
  Timer() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  void Reset() { start_ = std::chrono::steady_clock::now(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace r1
