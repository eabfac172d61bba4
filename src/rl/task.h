// Verifiable tasks for reinforcement learning (R1's rule-based accuracy reward, spec §2.2): each
// family generates problems deterministically, verifies a final answer exactly and writes a worked
// chain-of-thought solution in the R1 format for cold-start SFT. See docs/rl-tasks.md.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace r1::rl {

enum class Split { kTrain, kHeldOut };

struct Problem {
  std::string task;     // task name
  std::string prompt;   // the user message
  std::string answer;   // canonical answer text (what a correct response puts in \boxed{})
  nlohmann::json data;  // task-specific fields (operands, numbers, target, ...)
};

class Task {
 public:
  virtual ~Task() = default;
  virtual const std::string& name() const = 0;
  // Deterministic: the same (split, index, task args) always gives the same problem. The held-out
  // split never overlaps the training split: each problem belongs to a split by a hash of its
  // canonical key, and generation draws until the split matches (held-out share: `heldout=`).
  virtual Problem Generate(Split split, uint64_t index) const = 0;
  // Exact verification of the model's final answer text (already extracted from \boxed{} or the
  // answer part): true iff it solves the problem. Never crashes on arbitrary input.
  virtual bool Verify(const Problem& p, std::string_view answer) const = 0;
  // A worked chain-of-thought solution in the R1 format: "<think>\n" + steps + "\n</think>\n\n" +
  // a short final answer containing \boxed{answer}. Deterministic given (p, variant); `variant`
  // picks among a few phrasings so SFT data is not one template.
  virtual std::string Solution(const Problem& p, uint64_t variant) const = 0;
};

// name: "arithmetic", "countdown", "linear", "sort", or "jsonl:PATH" (user tasks).
// args: "key=value,key=value" (e.g. "digits=2-3,ops=+-*" for arithmetic; "numbers=3-4,max=50" for
// countdown). Unknown keys and bad values are InvalidArgument errors naming the key.
Result<std::unique_ptr<Task>> MakeTask(const std::string& name, const std::string& args);

// The built-in task names (without "jsonl:PATH").
std::vector<std::string> TaskNames();

const char* SplitName(Split split);  // "train" / "heldout"
Result<Split> ParseSplit(std::string_view text);

}  // namespace r1::rl
