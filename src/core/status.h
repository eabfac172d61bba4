// Status and Result<T>: how everything a user can get wrong is reported.
//
// A Status is ok or carries a code and one message that names the file, the field and what was
// expected. Library code never exits and never throws across its API; the CLI turns a bad Status
// into one line on stderr and an exit code (kUsage -> 2, anything else -> 1).
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>

namespace r1 {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // a value the caller passed is wrong (config field, flag, request)
  kUsage,            // command-line usage error (exit code 2)
  kNotFound,         // a file, tensor or key that must exist does not
  kIoError,          // the OS refused (open, read, write, rename)
  kDataLoss,         // a file exists but its bytes are corrupt or truncated
  kUnimplemented,    // a valid input we do not support (yet)
  kOutOfRange,       // e.g. a prompt longer than the context
  kInternal,
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"
  std::string ToString() const;

  // Returns a copy whose message is prefixed by `context: `, for adding the file or field name
  // on the way up.
  Status WithContext(const std::string& context) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status UsageError(std::string m) { return {StatusCode::kUsage, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status OutOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

// A value or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}              // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {       // NOLINT: implicit by design
    assert(!status_.ok() && "Result built from an ok Status");
  }

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace r1

#define R1_CONCAT_INNER_(a, b) a##b
#define R1_CONCAT_(a, b) R1_CONCAT_INNER_(a, b)

#define R1_RETURN_IF_ERROR(expr)              \
  do {                                        \
    ::r1::Status r1_status_ = (expr);         \
    if (!r1_status_.ok()) return r1_status_;  \
  } while (0)

#define R1_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

// R1_ASSIGN_OR_RETURN(auto x, MakeX()); returns the Status from the enclosing function on error.
#define R1_ASSIGN_OR_RETURN(lhs, expr) \
  R1_ASSIGN_OR_RETURN_IMPL_(R1_CONCAT_(r1_result_, __LINE__), lhs, expr)
