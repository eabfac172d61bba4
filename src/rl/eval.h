// Evaluation of a model on a task's held-out problems (`r1 eval`): K samples per problem;
// pass@1 is the mean accuracy over the samples, majority the accuracy of the most frequent
// extracted answer, format rate the share of well-formed completions, mean length in tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "infer/rollout.h"
#include "model/deepseek_v3.h"
#include "rl/task.h"
#include "tokenizer/tokenizer.h"

namespace r1::rl {

// The R1 chat prompt of a problem: "<BOS><｜User｜>{prompt}<｜Assistant｜><think>\n", tokenized.
Result<std::vector<int32_t>> PromptIds(const tok::Tokenizer& tokenizer, const Problem& p);

// Problems [first, first + n) of `split`, and each one's chat prompt tokenized (PromptIds).
struct PromptSet {
  std::vector<Problem> problems;
  std::vector<std::vector<int32_t>> prompts;
};
Result<PromptSet> MakePromptSet(const tok::Tokenizer& tokenizer, const Task& task, Split split, uint64_t first,
                                int64_t n);

// Options for sampling `group` completions per prompt that stop at the tokenizer's EOS.
RolloutOptions SamplingOptions(const tok::Tokenizer& tokenizer, int64_t group, int64_t max_new_tokens,
                               float temperature, float top_p, uint64_t seed);

// The text of a completion, without its stop token.
std::string CompletionText(const tok::Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool stopped);

struct EvalOptions {
  int64_t n = 100;          // problems
  int64_t samples = 4;      // K
  float temperature = 0.6f; // R1's recommended sampling
  float top_p = 0.95f;
  int64_t max_new_tokens = 256;
  uint64_t seed = 0;
  int64_t max_batch = 32;
  Split split = Split::kHeldOut;
  int64_t keep_examples = 3;  // traces kept for reports
};

struct EvalExample {
  std::string prompt, completion, expected;
  bool correct = false;
};

struct EvalResult {
  double pass1 = 0, majority = 0, format_rate = 0, mean_length = 0;
  int64_t problems = 0, samples = 0;
  double seconds = 0;
  std::vector<EvalExample> examples;
};

Result<EvalResult> Evaluate(const DeepSeekV3& model, const tok::Tokenizer& tokenizer, const Task& task,
                            const EvalOptions& opts);

}  // namespace r1::rl
