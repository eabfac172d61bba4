// Rule-based rewards for GRPO (spec §2.2, DAPO §3.4): accuracy from the task's verifier, format
// (reasoning closed by </think>, then a boxed answer) and optional overlong shaping, summed with
// weights. R1 sums accuracy and format with equal weight; the default here weights format 0.1 so
// that correctness dominates once the format is learned.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "rl/task.h"

namespace r1::rl {

struct RewardConfig {
  double accuracy_weight = 1.0;
  double format_weight = 0.1;
  int64_t max_tokens = 0;         // the length cap (max new tokens); 0 = no overlong shaping
  int64_t overlong_buffer = 0;    // linear penalty over the last `overlong_buffer` tokens before the cap (DAPO)
  double overlong_penalty = 1.0;  // penalty at the cap
};

// Parses "accuracy=1,format=0.1,max_tokens=256,overlong_buffer=64,overlong_penalty=0.5" (any
// subset; the rest keep their defaults) or, when `spec` names a file, a JSON object with the same
// keys. "" gives the defaults. Errors are InvalidArgument naming the key.
Result<RewardConfig> ParseRewardConfig(const std::string& spec);

struct Reward {
  double total = 0, accuracy = 0, format = 0, overlong = 0;
  bool correct = false;      // verifier said yes
  bool well_formed = false;  // format check passed
};

// The format check on its own. `completion` is the generated text AFTER the generation prompt
// (which already ends with "<think>\n"); an explicit leading "<think>" is also accepted. Well
// formed: exactly one "</think>", no other "<think>", non-blank reasoning before it, and a
// complete \boxed{...} with non-blank content after it.
bool IsWellFormed(std::string_view completion);

// The DAPO soft overlong penalty (<= 0): 0 up to max_tokens - overlong_buffer, then falling
// linearly to -overlong_penalty at max_tokens, and -overlong_penalty beyond. 0 when max_tokens is 0.
// With overlong_buffer = 0 only a completion longer than the cap is penalized.
double OverlongPenalty(int64_t completion_tokens, const RewardConfig& cfg);

// total = accuracy_weight·[correct] + format_weight·[well_formed] + OverlongPenalty(tokens).
// `correct` = the task verifies ExtractAnswer(completion) (the last box after the last </think>, or
// anywhere when there is none, as open-r1's accuracy reward does), independent of the format check.
Reward ComputeReward(const Task& task, const Problem& p, std::string_view completion, int64_t completion_tokens,
                     const RewardConfig& cfg);

}  // namespace r1::rl
