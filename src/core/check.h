// CHECK: internal invariants only. A failed CHECK is a bug in r1, never a user's mistake (those
// are Status). It prints the condition, the place and an optional message, then aborts.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace r1::internal {

[[noreturn]] inline void CheckFailed(const char* cond, const char* file, int line,
                                     const std::string& msg) {
  std::fprintf(stderr, "r1: internal check failed at %s:%d: %s%s%s\n", file, line, cond,
               msg.empty() ? "" : " — ", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

// Collects `<<` arguments of a failing check; aborts in its destructor.
class CheckMessage {
 public:
  CheckMessage(const char* cond, const char* file, int line) : cond_(cond), file_(file), line_(line) {}
  [[noreturn]] ~CheckMessage() { CheckFailed(cond_, file_, line_, os_.str()); }
  template <typename T>
  CheckMessage& operator<<(const T& v) {
    os_ << v;
    return *this;
  }

 private:
  const char* cond_;
  const char* file_;
  int line_;
  std::ostringstream os_;
};

struct Voidify {
  void operator&(const CheckMessage&) {}
};

}  // namespace r1::internal

#define R1_CHECK(cond)                                 \
  (cond) ? (void)0                                     \
         : ::r1::internal::Voidify() &                 \
               ::r1::internal::CheckMessage(#cond, __FILE__, __LINE__)

#define R1_CHECK_EQ(a, b) R1_CHECK((a) == (b)) << #a "=" << (a) << " " #b "=" << (b) << " "
#define R1_CHECK_LE(a, b) R1_CHECK((a) <= (b)) << #a "=" << (a) << " " #b "=" << (b) << " "
#define R1_CHECK_LT(a, b) R1_CHECK((a) < (b)) << #a "=" << (a) << " " #b "=" << (b) << " "
