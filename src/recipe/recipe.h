// A recipe: every number of the whole R1 pipeline that `r1 run` executes (docs/recipe.md).
//
// A recipe is one JSON object. Its sections name each stage's configuration: the task, the data
// sizes, the tokenizer, the teacher (MoE + MLA) and student (dense) model configs as Hugging Face
// config.json objects, and the hyperparameters of pretraining, cold-start SFT, GRPO, rejection
// sampling, distillation, the student's GRPO baseline and the evaluation. Parsing is strict:
// an unknown key, a missing section or a value of the wrong type is an InvalidArgument error
// naming the key path ("recipe.json: grpo.lr: expected a number, got a string").
//
// The built-in recipe (recipes/default.json) is compiled into the binary at build time.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace r1::recipe {

// The stages of `r1 run`, in order.
const std::vector<std::string>& StageNames();
// Index of `name` in StageNames(), or an error listing the stages.
Result<int> StageIndex(const std::string& name);

struct TaskConfig {
  std::string name = "arithmetic";
  std::string args;
};

struct DataConfig {
  int64_t pretrain_problems = 20000;  // training-split problems 0.. → documents of the corpus
  int64_t sft_chats = 400;            // the next sft_chats problems → cold-start chats
  int64_t solution_variants = 8;      // phrasings of the worked solutions (Task::Solution variant)
};

struct TokenizerConfig {
  int64_t vocab_size = 384;
  std::string digits = "single";  // "single" or "group3"
  int64_t min_frequency = 2;
};

// One supervised training run (pretrain, sft, student pretraining, distillation).
struct TrainConfig {
  int64_t steps = 100, batch = 16, seq = 128, grad_accum = 1, warmup = 0;
  float lr = 1e-3f, min_lr = 0.0f, weight_decay = 0.1f, clip = 1.0f;
  std::string schedule = "constant";  // "constant" or "cosine"
  double mtp_weight = -1;             // < 0: 0.3 when the model has an MTP module
  double balance_alpha = 0.0001, bias_update_speed = 0.001;
  double init_std = 0.02;             // std of the random initialization (stages that start from scratch)
};

struct GrpoConfig {
  int64_t steps = 20, prompts_per_step = 8, group = 8, max_new_tokens = 120, micro_batch = 16;
  float temperature = 1.0f, top_p = 1.0f, lr = 1e-4f, weight_decay = 0.0f, clip = 1.0f;
  double beta = 0.0, epsilon = 0.2, epsilon_high = -1;
  std::string loss = "token-mean";  // token-mean, seq-mean-token-mean or dr-grpo
  int64_t mu = 1;
  bool dynamic_sampling = false;
  std::string reward;  // ParseRewardConfig spec; "" = defaults
};

struct RejectionConfig {
  int64_t problems = 400;        // training problems after the pretraining and SFT slices
  int64_t samples = 4;           // k completions per problem
  int64_t keep_per_problem = 1;  // distinct accepted traces kept per problem
  int64_t max_new_tokens = 120;
  float temperature = 1.0f, top_p = 1.0f;
  // Problems without an accepted sample get the task's reference solution instead. Only for
  // smoke tests whose teacher is too small to solve anything; the record counts them.
  bool fill_with_reference = false;
};

struct DistillConfig {
  TrainConfig train;
  double logit_weight = 0.0;  // w of w·KL(teacher‖student) next to the cross-entropy; 0 = plain SFT
};

struct StudentGrpoConfig {
  GrpoConfig grpo;                // grpo.steps is the cap
  bool match_distill_time = true; // stop after the step that crosses the distill stage's seconds
  double max_seconds = 0;         // used when match_distill_time is false; 0 = no limit
};

struct EvalConfig {
  int64_t problems = 100, samples = 4, max_new_tokens = 120, examples = 3;
  float temperature = 0.6f, top_p = 0.95f;
  uint64_t seed = 0;
};

struct Recipe {
  std::string name;
  uint64_t seed = 0;
  TaskConfig task;
  DataConfig data;
  TokenizerConfig tokenizer;
  ModelConfig teacher, student;
  nlohmann::json teacher_json, student_json;  // as written (HF config.json fields)
  TrainConfig pretrain, sft, student_pretrain;
  GrpoConfig grpo;
  RejectionConfig rejection;
  DistillConfig distill;
  StudentGrpoConfig student_grpo;
  EvalConfig eval;
};

// Parses and validates a recipe; `source` names it in errors. Checks beyond types: the task and
// its args (MakeTask), both model configs, teacher has routed experts, the student is dense with
// at most half the teacher's activated parameters, both share the tokenizer's vocab size, and the
// sequence lengths fit max_position_embeddings.
Result<Recipe> ParseRecipe(const std::string& text, const std::string& source);
Result<Recipe> LoadRecipe(const std::string& path);

// The built-in recipe's text (recipes/default.json, embedded at build time).
const std::string& DefaultRecipeText();

}  // namespace r1::recipe
