// The training stages of `r1 run`: teacher pretraining, cold-start SFT, GRPO, the student's
// pretraining, distillation and the student's GRPO-only baseline. Each wraps the library entry
// point of its command (train::Train, rl::RunGrpo, Distill) with the recipe's numbers.
#include <filesystem>

#include "core/file.h"
#include "core/log.h"
#include "recipe/distill.h"
#include "recipe/pipeline.h"
#include "rl/grpo.h"
#include "train/trainer.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

// Metrics files are appended to by the trainers: start each stage with an empty one.
Result<std::string> FreshMetrics(const StageContext& ctx, const std::string& stage) {
  std::error_code ec;
  std::filesystem::create_directories(ctx.Path("metrics"), ec);
  if (ec) return IoError(ctx.Path("metrics") + ": cannot create directory: " + ec.message());
  const std::string path = ctx.Path("metrics/" + stage + ".jsonl");
  std::filesystem::remove(path, ec);
  return path;
}

Result<std::string> WriteConfig(const StageContext& ctx, const std::string& name, const ModelConfig& c) {
  std::error_code ec;
  std::filesystem::create_directories(ctx.Path("config"), ec);
  if (ec) return IoError(ctx.Path("config") + ": cannot create directory: " + ec.message());
  const std::string path = ctx.Path("config/" + name + ".json");
  R1_RETURN_IF_ERROR(WriteFileAtomic(path, c.ToJson()));
  return path;
}

train::TrainOptions TrainOpts(const TrainConfig& t, const std::string& stage, uint64_t seed) {
  train::TrainOptions o;
  o.stage = stage;
  o.steps = t.steps;
  o.batch = t.batch;
  o.seq = t.seq;
  o.grad_accum = t.grad_accum;
  o.lr = t.lr;
  o.min_lr = t.min_lr;
  o.schedule = t.schedule == "cosine" ? train::LrSchedule::kCosine : train::LrSchedule::kConstant;
  o.warmup = t.warmup;
  o.weight_decay = t.weight_decay;
  o.clip = t.clip;
  o.mtp_weight = t.mtp_weight;
  o.balance_alpha = t.balance_alpha;
  o.bias_update_speed = t.bias_update_speed;
  o.init_std = t.init_std;
  o.seed = seed;
  return o;
}

Result<json> RunTrain(StageContext& ctx, train::TrainOptions o, const std::string& out_name, const std::string& metrics_name,
                      const ModelConfig& config) {
  R1_ASSIGN_OR_RETURN(o.metrics, FreshMetrics(ctx, metrics_name));
  o.out = ctx.Path(out_name);
  R1_ASSIGN_OR_RETURN(train::TrainSummary s, train::Train(o));
  const ModelStats st = ComputeStats(config);
  return json{{"checkpoint", o.out},          {"metrics", o.metrics},
              {"steps", s.steps},             {"final_loss", s.final_loss},
              {"seconds", s.seconds},         {"tokens_per_second", s.tokens_per_second},
              {"total_params", st.total_params}, {"active_params", st.active_params}};
}

rl::GrpoOptions GrpoOpts(const Recipe& r, const GrpoConfig& g) {
  rl::GrpoOptions o;
  o.task = r.task.name;
  o.task_args = r.task.args;
  o.reward = g.reward;
  o.steps = g.steps;
  o.prompts_per_step = g.prompts_per_step;
  o.group = g.group;
  o.max_new_tokens = g.max_new_tokens;
  o.temperature = g.temperature;
  o.top_p = g.top_p;
  o.lr = g.lr;
  o.beta = g.beta;
  o.epsilon = g.epsilon;
  o.epsilon_high = g.epsilon_high;
  if (g.loss == "seq-mean-token-mean") o.loss = rl::GrpoLoss::kSeqMeanTokenMean;
  if (g.loss == "dr-grpo") {
    o.loss = rl::GrpoLoss::kDrGrpo;
    o.scale_rewards = false;
  }
  o.mu = static_cast<int>(g.mu);
  o.dynamic_sampling = g.dynamic_sampling;
  o.weight_decay = g.weight_decay;
  o.clip = g.clip;
  o.micro_batch = g.micro_batch;
  o.seed = r.seed;
  return o;
}

Result<json> RunGrpoFrom(StageContext& ctx, rl::GrpoOptions o, const std::string& init, const std::string& out_name,
                         const ModelConfig& config) {
  o.init = ctx.Path(init);
  o.out = ctx.Path(out_name);
  R1_ASSIGN_OR_RETURN(o.metrics, FreshMetrics(ctx, out_name));
  R1_ASSIGN_OR_RETURN(rl::GrpoSummary s, rl::RunGrpo(o));
  const ModelStats st = ComputeStats(config);
  return json{{"checkpoint", o.out},
              {"metrics", o.metrics},
              {"steps", s.steps},
              {"seconds", s.seconds},
              {"final_reward", s.final_reward},
              {"final_accuracy", s.final_accuracy},
              {"max_seconds", o.max_seconds},
              {"total_params", st.total_params},
              {"active_params", st.active_params}};
}

// A model from random init (config `config_name`) on the generated corpus, into `out_name`.
Result<json> PretrainFromScratch(StageContext& ctx, const TrainConfig& t, uint64_t seed, const std::string& config_name,
                                 const ModelConfig& config, const std::string& out_name, const std::string& metrics) {
  train::TrainOptions o = TrainOpts(t, "pretrain", seed);
  R1_ASSIGN_OR_RETURN(o.config_path, WriteConfig(ctx, config_name, config));
  o.tokenizer = ctx.Path("tokenizer");
  o.data = ctx.Path("data/corpus.jsonl");
  return RunTrain(ctx, o, out_name, metrics, config);
}

}  // namespace

Result<json> RunPretrainStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  return PretrainFromScratch(ctx, r.pretrain, r.seed, "teacher", r.teacher, "base", "pretrain");
}

Result<json> RunSftStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  train::TrainOptions o = TrainOpts(r.sft, "sft", r.seed);
  o.init_dir = ctx.Path("base");
  o.data = ctx.Path("data/sft.jsonl");
  return RunTrain(ctx, o, "sft", "sft", r.teacher);
}

Result<json> RunGrpoStage(StageContext& ctx) {
  return RunGrpoFrom(ctx, GrpoOpts(ctx.recipe, ctx.recipe.grpo), "sft", "grpo", ctx.recipe.teacher);
}

// The student's pretraining: same corpus and the same kind of budget as the teacher's.
Result<json> RunStudentBaseStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  return PretrainFromScratch(ctx, r.student_pretrain, r.seed + 1, "student", r.student, "student-base", "student-base");
}

Result<json> RunDistillStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  DistillOptions o;
  o.init = ctx.Path("student-base");
  o.teacher = ctx.Path("grpo");
  o.data = ctx.Path("data/rejection.jsonl");
  o.out = ctx.Path("student");
  R1_ASSIGN_OR_RETURN(o.metrics, FreshMetrics(ctx, "distill"));
  o.train = r.distill.train;
  o.logit_weight = r.distill.logit_weight;
  o.seed = r.seed + 2;
  R1_ASSIGN_OR_RETURN(DistillSummary s, Distill(o));
  const ModelStats st = ComputeStats(r.student);
  return json{{"checkpoint", o.out},       {"metrics", o.metrics},      {"steps", s.steps},
              {"seconds", s.seconds},      {"final_loss", s.final_loss}, {"final_ce", s.final_ce},
              {"final_kl", s.final_kl},    {"logit_weight", o.logit_weight},
              {"total_params", st.total_params}, {"active_params", st.active_params}};
}

// The baseline of R1's distillation-vs-RL comparison: GRPO on the student base alone, for as
// long as distillation took.
Result<json> RunStudentGrpoStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  rl::GrpoOptions o = GrpoOpts(r, r.student_grpo.grpo);
  o.seed = r.seed + 3;
  o.max_seconds = r.student_grpo.max_seconds;
  if (r.student_grpo.match_distill_time) {
    R1_ASSIGN_OR_RETURN(json distill, ctx.Record("distill"));
    o.max_seconds = std::max(1e-3, distill["seconds"].get<double>());
    LogInfo("student-grpo: time budget %.1f s (the distill stage's)", o.max_seconds);
  }
  return RunGrpoFrom(ctx, o, "student-base", "student-grpo", r.student);
}

}  // namespace r1::recipe
