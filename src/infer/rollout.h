// Batched sampling of several completions per prompt, synchronously, on whatever weights the
// model views — in RL these are the live training weights. Each prompt is prefilled once and its
// latent cache copied to its G completions; all unfinished sequences then decode together, in
// chunks of at most max_batch.
//
// How the threads share a decode step (DecodeSplit): when the weight matrices stay in the
// last-level cache (the RL and recipe models), each thread prefills whole prompts and decodes its
// own chunk of sequences, single-threaded, so a step crosses no barrier — on small matrices the fork/joins and serial
// glue between the many short parallel products of a shared step left a thread idle ~30 % of the
// time. Those chunks hold at most kernels::kMaxBatchGemv sequences, so every completion is bit
// for bit what sampling it alone gives, at any thread count. When the weights stream from memory
// (released-size models) the threads share each product instead, so each weight byte is read once
// per step, not once per thread.
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
  enum class Split { kAuto, kSequences, kProducts };
  Split split = Split::kAuto;   // kAuto: DecodeSplit below
};

// The choice of RolloutOptions::Split::kAuto: kSequences when there are several threads and twice
// the decode matrices (DeepSeekV3::DecodeMatrixBytes, all routed experts) fit the last-level cache (llc_bytes; 0 =
// unknown, then kProducts).
RolloutOptions::Split DecodeSplit(uint64_t matrix_bytes, uint64_t llc_bytes, int threads);

// The last-level cache size this machine reports (L3, else L2), 0 when unknown.
uint64_t LastLevelCacheBytes();

struct Completion {
  int64_t prompt_index = 0;
  std::vector<int32_t> ids;       // generated tokens (a stop id, when hit, is the last)
  std::vector<float> logprobs;    // log π(id) under softmax(logits / temperature), untruncated
  bool stopped = false;           // ended on a stop id (else on max_new_tokens)
  // With an FfnTape: the rows of the prompt's tokens (prompt_row + i for token i; the G
  // completions of a prompt share them) and of the completion's tokens fed back (row + j for
  // ids[j], j < ids.size() − 1: the last token is sampled, never fed). −1 without a tape.
  int64_t tape_prompt_row = -1, tape_row = -1;
};

struct RolloutStats {
  int64_t tokens = 0;
  double seconds = 0;
};

// Completions in prompt order, G per prompt. With `tape` (made for this model), appends rows for
// every token the rollout feeds through the model and records their feed-forward activations
// there (FfnTape; Completion says which rows); what is sampled does not change.
Result<std::vector<Completion>> SampleCompletions(const DeepSeekV3& model,
                                                  const std::vector<std::vector<int32_t>>& prompts,
                                                  const RolloutOptions& opts, RolloutStats* stats = nullptr,
                                                  FfnTape* tape = nullptr);

// log softmax(logits / temperature)[id], in f64.
double LogProbAt(const float* logits, int64_t V, int32_t id, float temperature);

}  // namespace r1
