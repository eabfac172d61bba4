// Distillation of the RL teacher into the dense student (R1 §4 / spec §3): supervised fine-tuning
// of the student on the teacher's rejection-sampled traces, optionally with logit distillation —
// w·KL(teacher ‖ student) over the next-token distributions at every trained position, the
// teacher being the GRPO model on the same tokenizer (Hinton et al.; R1 itself used plain SFT).
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "recipe/recipe.h"

namespace r1::recipe {

struct DistillOptions {
  std::string init;     // the student checkpoint (with tokenizer.json)
  std::string teacher;  // the teacher checkpoint; needed when logit_weight > 0
  std::string data;     // chat JSONL (loss on the final assistant turn)
  std::string out, metrics;
  TrainConfig train;
  double logit_weight = 0.0;
  uint64_t seed = 0;
};

struct DistillSummary {
  int64_t steps = 0;
  double final_loss = 0, final_ce = 0, final_kl = 0, seconds = 0;
};

Result<DistillSummary> Distill(const DistillOptions& opts);

}  // namespace r1::recipe
