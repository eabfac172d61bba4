#include "rl/reward.h"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "core/file.h"
#include "rl/answer.h"
#include "rl/rational.h"

namespace r1::rl {
namespace {

constexpr std::string_view kOpen = "<think>";
constexpr std::string_view kClose = "</think>";
constexpr const char* kKeys = "accuracy, format, max_tokens, overlong_buffer, overlong_penalty";

size_t Count(std::string_view s, std::string_view needle) {
  size_t n = 0;
  for (size_t pos = s.find(needle); pos != std::string_view::npos; pos = s.find(needle, pos + needle.size())) ++n;
  return n;
}

Status KeyError(const std::string& key, const std::string& what, const std::string& got) {
  return InvalidArgument("reward config: " + key + ": expected " + what + ", got '" + got + "'");
}

// Sets one field from its text (key=value form) or JSON value.
Status SetField(RewardConfig* cfg, const std::string& key, const nlohmann::json& value) {
  const std::string got = value.is_string() ? value.get<std::string>() : value.dump();
  auto number = [&](double* out, bool non_negative) -> Status {
    double v = NAN;
    if (value.is_number()) {
      v = value.get<double>();
    } else if (value.is_string()) {
      const std::string s(TrimSpace(got));
      char* end = nullptr;
      v = s.empty() ? NAN : std::strtod(s.c_str(), &end);
      if (!s.empty() && end != s.c_str() + s.size()) v = NAN;
    }
    if (!std::isfinite(v) || (non_negative && v < 0))
      return KeyError(key, non_negative ? "a non-negative number" : "a number", got);
    *out = v;
    return Status::Ok();
  };
  auto integer = [&](int64_t* out) -> Status {
    std::optional<int64_t> v;
    if (value.is_number_integer()) {
      v = value.get<int64_t>();
    } else if (value.is_string()) {
      const std::string_view s = TrimSpace(got);
      int64_t x = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), x);
      if (ec == std::errc() && p == s.data() + s.size() && !s.empty()) v = x;
    }
    if (!v || *v < 0) return KeyError(key, "a non-negative integer", got);
    *out = *v;
    return Status::Ok();
  };
  if (key == "accuracy" || key == "accuracy_weight") return number(&cfg->accuracy_weight, false);
  if (key == "format" || key == "format_weight") return number(&cfg->format_weight, false);
  if (key == "max_tokens") return integer(&cfg->max_tokens);
  if (key == "overlong_buffer") return integer(&cfg->overlong_buffer);
  if (key == "overlong_penalty") return number(&cfg->overlong_penalty, true);
  return InvalidArgument("reward config: unknown key '" + key + "' (expected " + kKeys + ")");
}

}  // namespace

Result<RewardConfig> ParseRewardConfig(const std::string& spec) {
  RewardConfig cfg;
  const std::string_view trimmed = TrimSpace(spec);
  if (trimmed.empty()) return cfg;
  if (trimmed.find('=') == std::string_view::npos) {
    // A JSON file.
    const std::string path(trimmed);
    R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      return InvalidArgument("reward config " + path + ": expected a JSON object with keys " + kKeys);
    for (const auto& [key, value] : j.items()) R1_RETURN_IF_ERROR(SetField(&cfg, key, value).WithContext(path));
  } else {
    size_t start = 0;
    while (start <= trimmed.size()) {
      size_t comma = trimmed.find(',', start);
      if (comma == std::string_view::npos) comma = trimmed.size();
      const std::string_view entry = TrimSpace(trimmed.substr(start, comma - start));
      start = comma + 1;
      if (entry.empty()) continue;
      const size_t eq = entry.find('=');
      if (eq == std::string_view::npos)
        return InvalidArgument("reward config: expected key=value, got '" + std::string(entry) + "'");
      R1_RETURN_IF_ERROR(SetField(&cfg, std::string(TrimSpace(entry.substr(0, eq))),
                                  std::string(TrimSpace(entry.substr(eq + 1)))));
    }
  }
  if (cfg.max_tokens > 0 && cfg.overlong_buffer > cfg.max_tokens)
    return InvalidArgument("reward config: overlong_buffer: expected at most max_tokens (" +
                           std::to_string(cfg.max_tokens) + "), got '" + std::to_string(cfg.overlong_buffer) + "'");
  return cfg;
}

bool IsWellFormed(std::string_view completion) {
  std::string_view s = completion;
  if (const std::string_view lead = TrimSpace(s); lead.substr(0, kOpen.size()) == kOpen)
    s = lead.substr(kOpen.size());
  if (Count(s, kOpen) != 0 || Count(s, kClose) != 1) return false;
  const size_t close = s.find(kClose);
  if (TrimSpace(s.substr(0, close)).empty()) return false;
  const std::optional<std::string> answer = ExtractAnswer(s.substr(close + kClose.size()));
  return answer.has_value() && !answer->empty();
}

double OverlongPenalty(int64_t completion_tokens, const RewardConfig& cfg) {
  if (cfg.max_tokens <= 0) return 0.0;
  if (completion_tokens > cfg.max_tokens) return -cfg.overlong_penalty;
  const int64_t free_tokens = cfg.max_tokens - cfg.overlong_buffer;
  if (cfg.overlong_buffer <= 0 || completion_tokens <= free_tokens) return 0.0;
  // = DAPO: (expected_len - valid_len) / buffer * penalty_factor, expected_len = cap - buffer.
  return static_cast<double>(free_tokens - completion_tokens) / static_cast<double>(cfg.overlong_buffer) *
         cfg.overlong_penalty;
}

Reward ComputeReward(const Task& task, const Problem& p, std::string_view completion, int64_t completion_tokens,
                     const RewardConfig& cfg) {
  Reward r;
  const std::optional<std::string> answer = ExtractAnswer(completion);
  r.correct = answer.has_value() && task.Verify(p, *answer);
  r.well_formed = IsWellFormed(completion);
  r.accuracy = r.correct ? cfg.accuracy_weight : 0.0;
  r.format = r.well_formed ? cfg.format_weight : 0.0;
  r.overlong = OverlongPenalty(completion_tokens, cfg);
  r.total = r.accuracy + r.format + r.overlong;
  return r;
}

}  // namespace r1::rl
