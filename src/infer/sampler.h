// Next-token sampling: temperature, top-k, top-p (nucleus), seeded. Temperature 0 is greedy.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace r1 {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy (argmax)
  float top_p = 1.0f;        // keep the smallest set of tokens whose probability reaches top_p
  int32_t top_k = 0;         // 0 = no limit
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p) : params_(p), rng_(p.seed) {}

  // Picks a token from logits (V). `logprob`, if non-null, receives log p(token) under the
  // distribution actually sampled from (after temperature, top-k and top-p).
  int32_t Sample(const float* logits, int64_t V, float* logprob = nullptr);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  Rng rng_;
  std::vector<int32_t> order_;
  std::vector<float> probs_;
};

// log softmax(logits / temperature)[id] (temperature > 0), summed in f64.
double LogSoftmaxAt(const float* logits, int64_t V, int32_t id, float temperature = 1.0f);

}  // namespace r1
