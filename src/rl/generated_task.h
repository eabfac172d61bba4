// The shared machinery of the built-in (generated) tasks: deterministic seeding per (seed, split,
// index) and the split rule.
//
// A problem's split is a function of its content only — a hash of the task name and the problem's
// canonical key (e.g. the sorted numbers and the target for Countdown), never of the seed or the
// index — so problems drawn with different seeds, or the same problem written in another order,
// still never cross the split. The hash is mapped to u in [0, 1) and u < heldout means held-out,
// so a smaller `heldout` gives a subset of a larger one's held-out split.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "core/rng.h"
#include "rl/task.h"
#include "rl/task_args.h"

namespace r1::rl {

struct GeneratedTaskOptions {
  uint64_t seed = 0;      // args "seed=N": another stream of problems, same split rule
  double heldout = 0.15;  // args "heldout=F": held-out share of the problem space
};

// Reads "seed" and "heldout" from `args`.
Result<GeneratedTaskOptions> ParseGeneratedTaskOptions(TaskArgs& args);

class GeneratedTask : public Task {
 public:
  GeneratedTask(std::string name, const GeneratedTaskOptions& options) : name_(std::move(name)), options_(options) {}

  const std::string& name() const override { return name_; }
  // Draws from the (seed, split, index) stream until a problem of `split` comes up.
  Problem Generate(Split split, uint64_t index) const final;
  // As Generate, giving up after `max_draws` draws.
  std::optional<Problem> TryGenerate(Split split, uint64_t index, uint64_t max_draws) const;
  // The split of a problem with canonical key `key`.
  Split SplitOfKey(const std::string& key) const;

  // For factories: an error when the arguments leave a split (nearly) empty or give no problems.
  Status CheckSplitsReachable() const;

 protected:
  // One random problem of either split (task, prompt, answer, data set), or nullopt when this
  // draw failed (e.g. a Countdown target out of range); the caller draws again.
  virtual std::optional<Problem> Draw(Rng& rng) const = 0;
  // The problem's identity: two problems with equal keys are the same problem.
  virtual std::string Key(const Problem& p) const = 0;

 private:
  std::string name_;
  GeneratedTaskOptions options_;
};

// Whether `p` carries the integer fields `keys` (and, for `array_key`, an array of integers):
// Verify answers false for a problem that did not come from its task instead of failing.
bool HasIntegerFields(const Problem& p, std::initializer_list<const char*> keys, const char* array_key = nullptr);

// A stable 64-bit hash of `s` (FNV-1a, then a splitmix finalizer), the same on every platform.
uint64_t StableHash(std::string_view s, uint64_t salt = 0);

}  // namespace r1::rl
