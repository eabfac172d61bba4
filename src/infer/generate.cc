#include "infer/generate.h"

#include <algorithm>

#include "core/log.h"

namespace r1 {

Result<GenerateResult> Generate(const DeepSeekV3& model, const std::vector<int32_t>& prompt,
                                const GenerateOptions& opts, const std::function<bool(int32_t)>& on_token) {
  const ModelConfig& c = model.config();
  const int64_t P = static_cast<int64_t>(prompt.size());
  if (P == 0) return InvalidArgument("the prompt is empty");
  if (opts.max_new_tokens < 0) return InvalidArgument("max_new_tokens must be >= 0");
  for (int32_t id : prompt)
    if (id < 0 || id >= c.vocab_size)
      return InvalidArgument("prompt token id " + std::to_string(id) + " is outside the vocabulary (" +
                             std::to_string(c.vocab_size) + ")");
  const int64_t total = P + opts.max_new_tokens;
  if (P > c.max_position_embeddings)
    return OutOfRange("the prompt has " + std::to_string(P) + " tokens, over the context of " +
                      std::to_string(c.max_position_embeddings));
  if (total > c.max_position_embeddings)
    return OutOfRange("prompt (" + std::to_string(P) + ") + max_new_tokens (" + std::to_string(opts.max_new_tokens) +
                      ") exceeds the context of " + std::to_string(c.max_position_embeddings));
  GenerateResult res;
  if (opts.max_new_tokens == 0) return res;
  const int64_t V = c.vocab_size;
  LatentCache cache = model.NewCache(total);
  Sampler sampler(opts.sampling);
  std::vector<float> logits(static_cast<size_t>(V));
  Timer timer;
  model.Forward(prompt.data(), P, logits.data(), &cache, /*last_only=*/true);
  res.prefill_seconds = timer.Seconds();
  const float* last = logits.data();
  timer.Reset();
  std::vector<float> step(static_cast<size_t>(V));
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    float lp = 0;
    const int32_t next = sampler.Sample(last, V, &lp);
    res.ids.push_back(next);
    res.logprobs.push_back(lp);
    const bool stop = std::find(opts.stop_ids.begin(), opts.stop_ids.end(), next) != opts.stop_ids.end();
    if (on_token && !on_token(next)) break;
    if (stop) {
      res.stopped = true;
      break;
    }
    if (i + 1 == opts.max_new_tokens) break;
    R1_RETURN_IF_ERROR(model.Decode(&next, 1, &cache, step.data()));
    last = step.data();
  }
  res.decode_seconds = timer.Seconds();
  return res;
}

}  // namespace r1
