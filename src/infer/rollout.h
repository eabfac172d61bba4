// Batched sampling of several completions per prompt, synchronously, on whatever weights the
// model views — in RL these are the live training weights. Each prompt is prefilled once and its
// latent cache copied to its G completions; all unfinished sequences then decode together.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "infer/sampler.h"
#include "model/deepseek_v3.h"

namespace r1 {

struct RolloutOptions {
  int64_t group = 1;            // completions per prompt (G)
  int64_t max_new_tokens = 64;
  float temperature = 1.0f;
  float top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;            // completion i of prompt p samples with seed + p·G + i
  std::vector<int32_t> stop_ids;
  int64_t max_batch = 32;       // sequences per decode step
};

struct Completion {
  int64_t prompt_index = 0;
  std::vector<int32_t> ids;       // generated tokens (a stop id, when hit, is the last)
  std::vector<float> logprobs;    // log π(id) under softmax(logits / temperature), untruncated
  bool stopped = false;           // ended on a stop id (else on max_new_tokens)
};

struct RolloutStats {
  int64_t tokens = 0;
  double seconds = 0;
};

// Completions in prompt order, G per prompt.
Result<std::vector<Completion>> SampleCompletions(const DeepSeekV3& model, const std::vector<std::vector<int32_t>>& prompts,
                                                  const RolloutOptions& opts, RolloutStats* stats = nullptr);

// log softmax(logits / temperature)[id], in f64.
double LogProbAt(const float* logits, int64_t V, int32_t id, float temperature);

}  // namespace r1
