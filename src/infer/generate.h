// Single-sequence generation: naive-attention prefill that fills the latent cache, then
// absorbed decode one token at a time.
#pragma once

#include <functional>
#include <vector>

#include "core/status.h"
#include "infer/sampler.h"
#include "model/deepseek_v3.h"

namespace r1 {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  std::vector<int32_t> stop_ids;  // generation ends after emitting one of these (it is kept)
};

struct GenerateResult {
  std::vector<int32_t> ids;  // new tokens only
  std::vector<float> logprobs;
  bool stopped = false;      // ended on a stop id (else on max_new_tokens)
  double prefill_seconds = 0;
  double decode_seconds = 0;
};

// on_token, if set, is called with each new id as it is produced; returning false stops.
Result<GenerateResult> Generate(const DeepSeekV3& model, const std::vector<int32_t>& prompt,
                                const GenerateOptions& opts,
                                const std::function<bool(int32_t)>& on_token = nullptr);

}  // namespace r1
