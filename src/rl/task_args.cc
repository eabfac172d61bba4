#include "rl/task_args.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "rl/rational.h"

namespace r1::rl {
namespace {

std::optional<int64_t> ToInt(std::string_view s) {
  s = TrimSpace(s);
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || p != end || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

Result<TaskArgs> TaskArgs::Parse(const std::string& task, const std::string& args) {
  TaskArgs out;
  out.task_ = task;
  size_t start = 0;
  while (start <= args.size()) {
    size_t comma = args.find(',', start);
    if (comma == std::string::npos) comma = args.size();
    const std::string_view entry = TrimSpace(std::string_view(args).substr(start, comma - start));
    start = comma + 1;
    if (entry.empty()) continue;
    const size_t eq = entry.find('=');
    if (eq == std::string_view::npos)
      return InvalidArgument(task + " task args: expected key=value, got '" + std::string(entry) + "'");
    const std::string key(TrimSpace(entry.substr(0, eq)));
    const std::string value(TrimSpace(entry.substr(eq + 1)));
    if (key.empty()) return InvalidArgument(task + " task args: empty key in '" + std::string(entry) + "'");
    if (!out.values_.emplace(key, value).second)
      return InvalidArgument(task + " task args: " + key + " given twice");
  }
  return out;
}

Status TaskArgs::Error(const std::string& key, const std::string& what) const {
  return InvalidArgument(task_ + " task args: " + key + ": " + what + ", got '" + values_.at(key) + "'");
}

Result<int64_t> TaskArgs::Int(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  asked_.push_back(key);
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  const std::optional<int64_t> v = ToInt(it->second);
  if (!v || *v < min || *v > max)
    return Error(key, "expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return *v;
}

Result<IntRange> TaskArgs::Range(const std::string& key, IntRange fallback, int64_t min, int64_t max) {
  asked_.push_back(key);
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  const size_t dash = s.find('-', 1);
  std::optional<int64_t> lo, hi;
  if (dash == std::string::npos) {
    lo = hi = ToInt(s);
  } else {
    lo = ToInt(std::string_view(s).substr(0, dash));
    hi = ToInt(std::string_view(s).substr(dash + 1));
  }
  const std::string expected = "expected A-B or A with " + std::to_string(min) + " <= A <= B <= " + std::to_string(max);
  if (!lo || !hi || *lo < min || *hi > max || *lo > *hi) return Error(key, expected);
  return IntRange{*lo, *hi};
}

Result<double> TaskArgs::Fraction(const std::string& key, double fallback, double min, double max) {
  asked_.push_back(key);
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  const std::string& s = it->second;
  char* end = nullptr;
  const double v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v) || v < min || v > max)
    return Error(key, "expected a number in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  return v;
}

Result<std::string> TaskArgs::String(const std::string& key, const std::string& fallback) {
  asked_.push_back(key);
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

Status TaskArgs::CheckAllUsed() const {
  for (const auto& [key, value] : values_) {
    if (std::find(asked_.begin(), asked_.end(), key) != asked_.end()) continue;
    std::string known;
    for (const std::string& k : asked_) known += (known.empty() ? "" : ", ") + k;
    return InvalidArgument(task_ + " task args: unknown key '" + key + "' (expected one of: " + known + ")");
  }
  return Status::Ok();
}

}  // namespace r1::rl
