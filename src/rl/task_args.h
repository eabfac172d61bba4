// The "key=value,key=value" argument string of a task, with typed getters whose errors name the
// task and the key. Every key must be consumed: CheckAllUsed() reports the first unknown one.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"

namespace r1::rl {

struct IntRange {
  int64_t lo = 0;
  int64_t hi = 0;
};

class TaskArgs {
 public:
  // "" is no arguments; an entry without '=' or a repeated key is an error.
  static Result<TaskArgs> Parse(const std::string& task, const std::string& args);

  // Integer in [min, max]; `fallback` when absent.
  Result<int64_t> Int(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  // "A-B" or "A" (= "A-A") with min <= A <= B <= max.
  Result<IntRange> Range(const std::string& key, IntRange fallback, int64_t min, int64_t max);
  // A fraction in [min, max].
  Result<double> Fraction(const std::string& key, double fallback, double min, double max);
  Result<std::string> String(const std::string& key, const std::string& fallback);

  // An error naming the first key no getter asked for, listing the keys that were asked for.
  Status CheckAllUsed() const;

 private:
  Status Error(const std::string& key, const std::string& what) const;

  std::string task_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> asked_;
};

}  // namespace r1::rl
