// r1 grpo | eval — reinforcement learning with verifiable rewards, and its measurement.
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/file.h"
#include "core/log.h"
#include "core/memory.h"
#include "model/deepseek_v3.h"
#include "rl/eval.h"
#include "rl/grpo.h"
#include "rl/task.h"
#include "tokenizer/tokenizer.h"

namespace r1::cli {
namespace {

using json = nlohmann::json;

struct GrpoArgs {
  rl::GrpoOptions o;
  std::string loss = "token-mean";
  std::string precision = "f32";
};

Status RunGrpoCmd(GrpoArgs& a, const CommonOptions& common) {
  a.o.precision = a.precision == "bf16" ? kernels::GemmPrecision::kBf16 : kernels::GemmPrecision::kF32;
  if (a.loss == "token-mean") a.o.loss = rl::GrpoLoss::kTokenMean;
  else if (a.loss == "seq-mean-token-mean") a.o.loss = rl::GrpoLoss::kSeqMeanTokenMean;
  else if (a.loss == "dr-grpo") {
    a.o.loss = rl::GrpoLoss::kDrGrpo;
    a.o.scale_rewards = false;  // Dr. GRPO: advantages are mean-centred only
  } else {
    return UsageError("--loss must be token-mean, seq-mean-token-mean or dr-grpo");
  }
  R1_ASSIGN_OR_RETURN(rl::GrpoSummary s, rl::RunGrpo(a.o));
  if (common.json)
    std::printf("%s\n", json({{"steps", s.steps}, {"seconds", s.seconds}, {"final_reward", s.final_reward},
                              {"final_accuracy", s.final_accuracy}, {"checkpoint", a.o.out}})
                            .dump()
                            .c_str());
  return Status::Ok();
}

struct EvalArgs {
  std::string model, task, task_args, split = "heldout";
  rl::EvalOptions o;
  bool no_mmap = false, show = false;
};

Status RunEvalCmd(EvalArgs& a, const CommonOptions& common) {
  R1_ASSIGN_OR_RETURN(auto task, rl::MakeTask(a.task, a.task_args));
  R1_ASSIGN_OR_RETURN(a.o.split, rl::ParseSplit(a.split));
  R1_ASSIGN_OR_RETURN(auto model, DeepSeekV3::Load(a.model, io::LoadOptions{!a.no_mmap}));
  if (!FileExists(a.model + "/tokenizer.json")) return InvalidArgument(a.model + ": eval needs the checkpoint's tokenizer.json");
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(a.model));
  LogInfo("eval %s on %lld %s problems of %s, %lld samples each (temperature %.2f)", a.model.c_str(),
          static_cast<long long>(a.o.n), a.split.c_str(), a.task.c_str(), static_cast<long long>(a.o.samples),
          a.o.temperature);
  R1_ASSIGN_OR_RETURN(rl::EvalResult r, rl::Evaluate(*model, *tokenizer, *task, a.o));
  if (common.json) {
    std::printf("%s\n", json({{"pass1", r.pass1}, {"majority", r.majority}, {"format_rate", r.format_rate},
                              {"mean_length", r.mean_length}, {"problems", r.problems}, {"samples", r.samples},
                              {"seconds", r.seconds}})
                            .dump()
                            .c_str());
    return Status::Ok();
  }
  std::printf("task             %s (%s split, %lld problems x %lld samples)\n", a.task.c_str(), a.split.c_str(),
              static_cast<long long>(r.problems), static_cast<long long>(r.samples));
  std::printf("pass@1           %.1f%%\n", 100 * r.pass1);
  std::printf("majority vote    %.1f%%\n", 100 * r.majority);
  std::printf("format rate      %.1f%%\n", 100 * r.format_rate);
  std::printf("mean length      %.1f tokens\n", r.mean_length);
  std::printf("time             %.1f s\n", r.seconds);
  if (a.show)
    for (const auto& e : r.examples)
      std::printf("\n--- %s (expected %s, %s)\n%s\n", e.prompt.c_str(), e.expected.c_str(), e.correct ? "correct" : "wrong",
                  e.completion.c_str());
  return Status::Ok();
}

}  // namespace

void RegisterRlCommands(CLI::App& app) {
  {
    static CommonOptions common;
    static GrpoArgs a;
    rl::GrpoOptions& o = a.o;
    auto* cmd = AddCommand(app, "grpo", "GRPO with verifiable rewards on the live engine", &common,
                           [] { KeepFreedMemoryForReuse(); return RunGrpoCmd(a, common); });
    cmd->add_option("--init", o.init, "Checkpoint to train (with tokenizer.json)")->required();
    cmd->add_option("--task", o.task, "arithmetic, countdown, linear, sort or jsonl:PATH")->required();
    cmd->add_option("--task-args", o.task_args, "Task arguments, key=value,...");
    cmd->add_option("--reward", o.reward, "Reward weights, e.g. accuracy=1,format=0.1,overlong_buffer=32");
    cmd->add_option("--out", o.out, "Output checkpoint directory")->required();
    cmd->add_option("--steps", o.steps, "GRPO steps (rollout batches)")->required();
    cmd->add_option("--prompts-per-step", o.prompts_per_step, "Prompts per step (default 8)");
    cmd->add_option("--group", o.group, "Completions per prompt, G (default 8)");
    cmd->add_option("--max-new-tokens", o.max_new_tokens, "Completion length cap (default 128)");
    cmd->add_option("--temperature", o.temperature, "Rollout temperature (default 1.0)");
    cmd->add_option("--top-p", o.top_p, "Rollout nucleus mass (default 1.0)");
    cmd->add_option("--lr", o.lr, "Learning rate")->required();
    cmd->add_option("--beta", o.beta, "KL weight to the frozen reference (default 0: no reference)");
    cmd->add_option("--epsilon", o.epsilon, "Clip range ε (low) (default 0.2)");
    cmd->add_option("--epsilon-high", o.epsilon_high, "Upper clip ε_high (default = ε)");
    cmd->add_option("--loss", a.loss, "token-mean (default), seq-mean-token-mean or dr-grpo");
    cmd->add_option("--mu", o.mu, "Optimizer steps per rollout batch (default 1)");
    cmd->add_option("--ref-refresh", o.ref_refresh, "Copy the policy into the reference every N steps (default never)");
    cmd->add_flag("--dynamic-sampling", o.dynamic_sampling, "Drop groups whose rewards are all equal and sample more");
    cmd->add_option("--seed", o.seed, "Seed (default 0)");
    cmd->add_option("--metrics", o.metrics, "Append one JSON object per step to this file");
    cmd->add_option("--save-every", o.save_every, "Checkpoint every N steps (default: at the end)");
    cmd->add_option("--weight-decay", o.weight_decay, "Decoupled weight decay (default 0)");
    cmd->add_option("--clip", o.clip, "Global gradient-norm clip (default 1.0)");
    cmd->add_option("--bias-update-speed", o.bias_update_speed, "MoE balancing γ (default 0.001)");
    cmd->add_option("--balance-alpha", o.balance_alpha, "Sequence-wise balance loss α (default 0.0001)");
    cmd->add_option("--micro-batch", o.micro_batch, "Completions per forward/backward (default 16)");
    cmd->add_option("--precision", a.precision,
                    "Products of the update: f32 (default) or bf16 (bf16 operands, f32 sums; the rollout then "
                    "samples from a bf16 copy of the matrices)")
        ->check(CLI::IsMember({"f32", "bf16"}));
    cmd->add_flag("!--no-rollout-tape", o.rollout_tape,
                  "Recompute the whole forward in the update instead of reusing the rollout's feed-forward "
                  "activations");
  }
  {
    static CommonOptions common;
    static EvalArgs a;
    auto* cmd = AddCommand(app, "eval", "pass@1, majority vote, format rate and length on held-out problems", &common,
                           [] { KeepFreedMemoryForReuse(); return RunEvalCmd(a, common); });
    cmd->add_option("MODEL", a.model, "Checkpoint directory (with tokenizer.json)")->required();
    cmd->add_option("--task", a.task, "arithmetic, countdown, linear, sort or jsonl:PATH")->required();
    cmd->add_option("--task-args", a.task_args, "Task arguments, key=value,...");
    cmd->add_option("--n", a.o.n, "Problems (default 100)");
    cmd->add_option("--samples", a.o.samples, "Samples per problem, K (default 4)");
    cmd->add_option("--temperature", a.o.temperature, "Sampling temperature (default 0.6; 0 = greedy)");
    cmd->add_option("--top-p", a.o.top_p, "Nucleus mass (default 0.95)");
    cmd->add_option("--max-new-tokens", a.o.max_new_tokens, "Completion length cap (default 256)");
    cmd->add_option("--seed", a.o.seed, "Seed (default 0)");
    cmd->add_option("--split", a.split, "heldout (default) or train");
    cmd->add_flag("--show", a.show, "Print a few sample completions");
    cmd->add_flag("--no-mmap", a.no_mmap, "Read the weights into memory");
  }
}

}  // namespace r1::cli
