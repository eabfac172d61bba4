#include "rl/eval.h"

#include <map>

#include "core/log.h"
#include "infer/rollout.h"
#include "rl/answer.h"
#include "rl/reward.h"
#include "tokenizer/chat_template.h"

namespace r1::rl {

Result<std::vector<int32_t>> PromptIds(const tok::Tokenizer& tokenizer, const Problem& p) {
  tok::ChatMessage user;
  user.role = "user";
  user.content = p.prompt;
  R1_ASSIGN_OR_RETURN(std::string text, tok::RenderChat(tokenizer, {user}, /*add_generation_prompt=*/true));
  return tokenizer.Encode(text, /*add_special_tokens=*/false);
}

Result<PromptSet> MakePromptSet(const tok::Tokenizer& tokenizer, const Task& task, Split split, uint64_t first,
                                int64_t n) {
  PromptSet set;
  for (int64_t i = 0; i < n; ++i) {
    set.problems.push_back(task.Generate(split, first + static_cast<uint64_t>(i)));
    R1_ASSIGN_OR_RETURN(auto ids, PromptIds(tokenizer, set.problems.back()));
    set.prompts.push_back(std::move(ids));
  }
  return set;
}

RolloutOptions SamplingOptions(const tok::Tokenizer& tokenizer, int64_t group, int64_t max_new_tokens,
                               float temperature, float top_p, uint64_t seed) {
  RolloutOptions ro;
  ro.group = group;
  ro.max_new_tokens = max_new_tokens;
  ro.temperature = temperature;
  ro.top_p = top_p;
  ro.seed = seed;
  if (tokenizer.eos_id() >= 0) ro.stop_ids.push_back(tokenizer.eos_id());
  return ro;
}

std::string CompletionText(const tok::Tokenizer& tokenizer, const std::vector<int32_t>& ids, bool stopped) {
  if (stopped && !ids.empty()) return tokenizer.Decode(std::vector<int32_t>(ids.begin(), ids.end() - 1));
  return tokenizer.Decode(ids);
}

Result<EvalResult> Evaluate(const DeepSeekV3& model, const tok::Tokenizer& tokenizer, const Task& task,
                            const EvalOptions& opts) {
  if (opts.n < 1 || opts.samples < 1) return InvalidArgument("eval needs n >= 1 and samples >= 1");
  Timer timer;
  R1_ASSIGN_OR_RETURN(PromptSet set, MakePromptSet(tokenizer, task, opts.split, 0, opts.n));
  const std::vector<Problem>& problems = set.problems;
  RolloutOptions ro =
      SamplingOptions(tokenizer, opts.samples, opts.max_new_tokens, opts.temperature, opts.top_p, opts.seed);
  ro.max_batch = opts.max_batch;
  R1_ASSIGN_OR_RETURN(std::vector<Completion> comps, SampleCompletions(model, set.prompts, ro));
  EvalResult res;
  res.problems = opts.n;
  res.samples = opts.samples;
  RewardConfig rc;
  double correct = 0, formatted = 0, length = 0, majority = 0;
  for (int64_t p = 0; p < opts.n; ++p) {
    std::map<std::string, int64_t> votes;
    std::string best;
    int64_t best_votes = 0;
    for (int64_t k = 0; k < opts.samples; ++k) {
      const Completion& c = comps[static_cast<size_t>(p * opts.samples + k)];
      const std::string text = CompletionText(tokenizer, c.ids, c.stopped);
      const Reward r = ComputeReward(task, problems[p], text, static_cast<int64_t>(c.ids.size()), rc);
      correct += r.correct;
      formatted += r.well_formed;
      length += static_cast<double>(c.ids.size());
      if (auto a = ExtractAnswer(text)) {
        const int64_t v = ++votes[*a];
        if (v > best_votes) {  // ties keep the answer that reached the count first
          best_votes = v;
          best = *a;
        }
      }
      if (static_cast<int64_t>(res.examples.size()) < opts.keep_examples && k == 0)
        res.examples.push_back({problems[p].prompt, text, problems[p].answer, r.correct});
    }
    if (best_votes > 0 && task.Verify(problems[p], best)) majority += 1;
  }
  const double total = static_cast<double>(opts.n * opts.samples);
  res.pass1 = correct / total;
  res.format_rate = formatted / total;
  res.mean_length = length / total;
  res.majority = majority / static_cast<double>(opts.n);
  res.seconds = timer.Seconds();
  return res;
}

}  // namespace r1::rl
