// r1 task — prints problems of an RL task (and worked solutions, or SFT chats), or checks one
// answer against a problem (`--verify`), for debugging tasks, verifiers and rewards.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/command.h"
#include "rl/answer.h"
#include "rl/reward.h"
#include "rl/task.h"

namespace r1::cli {
namespace {

struct TaskArgs {
  std::string task;
  std::string task_args;
  std::string split = "train";
  int64_t n = 5;
  uint64_t start = 0;
  bool solutions = false;
  int64_t variant = -1;  // -1: the problem's index
  bool sft = false;
  bool verify = false;
  std::string answer;
  uint64_t index = 0;
  std::string reward;
};

nlohmann::json RewardJson(const rl::Reward& r) {
  return {{"total", r.total},     {"accuracy", r.accuracy}, {"format", r.format},
          {"overlong", r.overlong}, {"correct", r.correct},   {"well_formed", r.well_formed}};
}

Status RunVerify(const TaskArgs& a, const rl::Task& task, rl::Split split, const CommonOptions& common) {
  const rl::Problem p = task.Generate(split, a.index);
  // A whole completion (with a box or </think>) is reduced to its final answer and also scored.
  const bool completion = a.answer.find("\\boxed{") != std::string::npos || a.answer.find("</think>") != std::string::npos;
  std::optional<std::string> extracted = completion ? rl::ExtractAnswer(a.answer) : std::optional<std::string>(a.answer);
  const bool correct = extracted.has_value() && task.Verify(p, *extracted);
  std::optional<rl::Reward> reward;
  if (completion) {
    R1_ASSIGN_OR_RETURN(rl::RewardConfig cfg, rl::ParseRewardConfig(a.reward));
    reward = rl::ComputeReward(task, p, a.answer, 0, cfg);
  }
  if (common.json) {
    nlohmann::json j = {{"task", task.name()},   {"split", rl::SplitName(split)}, {"index", a.index},
                        {"prompt", p.prompt},    {"expected", p.answer},          {"correct", correct},
                        {"extracted", extracted ? nlohmann::json(*extracted) : nlohmann::json(nullptr)}};
    if (reward) j["reward"] = RewardJson(*reward);
    std::printf("%s\n", j.dump().c_str());
    return Status::Ok();
  }
  std::printf("problem: %s\n", p.prompt.c_str());
  std::printf("expected: %s\n", p.answer.c_str());
  if (completion) std::printf("extracted: %s\n", extracted ? extracted->c_str() : "(no \\boxed{...} answer)");
  std::printf("%s\n", correct ? "correct" : "wrong");
  if (reward)
    std::printf("reward: total=%g accuracy=%g format=%g overlong=%g well_formed=%s\n", reward->total, reward->accuracy,
                reward->format, reward->overlong, reward->well_formed ? "yes" : "no");
  return Status::Ok();
}

Status RunTask(const TaskArgs& a, const CommonOptions& common) {
  if (a.verify && a.answer.empty()) return UsageError("task --verify needs --answer TEXT");
  if (!a.verify && !a.answer.empty()) return UsageError("task: --answer only goes with --verify");
  if (a.sft && common.json) return UsageError("task: --sft and --json are two output formats; pick one");
  if (!a.reward.empty() && !a.verify) return UsageError("task: --reward only goes with --verify");
  R1_ASSIGN_OR_RETURN(rl::Split split, rl::ParseSplit(a.split));
  Result<std::unique_ptr<rl::Task>> made = rl::MakeTask(a.task, a.task_args);
  if (!made.ok()) {
    // Wrong task names and arguments are usage errors (exit 2); a missing JSONL file is not.
    if (made.status().code() == StatusCode::kInvalidArgument) return UsageError(made.status().message());
    return made.status();
  }
  const rl::Task& task = **made;
  if (a.verify) return RunVerify(a, task, split, common);

  for (int64_t i = 0; i < a.n; ++i) {
    const uint64_t index = a.start + static_cast<uint64_t>(i);
    const rl::Problem p = task.Generate(split, index);
    const uint64_t variant = a.variant >= 0 ? static_cast<uint64_t>(a.variant) : index;
    if (a.sft) {
      // The chat format `r1 sft` trains on (loss on the final assistant turn).
      const nlohmann::json j = {
          {"messages",
           {{{"role", "user"}, {"content", p.prompt}}, {{"role", "assistant"}, {"content", task.Solution(p, variant)}}}}};
      std::printf("%s\n", j.dump().c_str());
    } else if (common.json) {
      nlohmann::json j = {{"task", task.name()}, {"split", rl::SplitName(split)}, {"index", index},
                          {"prompt", p.prompt},  {"answer", p.answer},           {"data", p.data}};
      if (a.solutions) j["solution"] = task.Solution(p, variant);
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("[%s %llu] %s\nanswer: %s\n", rl::SplitName(split), static_cast<unsigned long long>(index),
                  p.prompt.c_str(), p.answer.c_str());
      if (a.solutions) std::printf("%s\n", task.Solution(p, variant).c_str());
      if (a.solutions && i + 1 < a.n) std::printf("\n");
    }
  }
  return Status::Ok();
}

}  // namespace

void RegisterTaskCommands(CLI::App& app) {
  static CommonOptions common;
  static TaskArgs a;
  CLI::App* cmd = AddCommand(app, "task", "Print RL task problems and worked solutions, or verify an answer",
                             &common, [] { return RunTask(a, common); });
  cmd->add_option("--task", a.task, "arithmetic, countdown, linear, sort or jsonl:PATH")->required();
  cmd->add_option("--task-args", a.task_args, "key=value,... (e.g. digits=2-3,ops=+-*; see docs/rl-tasks.md)");
  cmd->add_option("--split", a.split, "train (default) or heldout")->check(CLI::IsMember({"train", "heldout"}));
  cmd->add_option("--n", a.n, "Problems to print (default 5)")->check(CLI::Range(int64_t{0}, int64_t{100000000}));
  cmd->add_option("--start", a.start, "Index of the first problem (default 0)");
  cmd->add_flag("--solutions", a.solutions, "Also print a worked chain-of-thought solution");
  cmd->add_option("--variant", a.variant, "Phrasing of the solutions (default: the problem's index)")
      ->check(CLI::Range(int64_t{0}, INT64_MAX));
  cmd->add_flag("--sft", a.sft, "Print {\"messages\": [user, assistant]} JSONL for `r1 sft`");
  cmd->add_flag("--verify", a.verify, "Check --answer against problem --index of --split");
  cmd->add_option("--answer", a.answer, "With --verify: a final answer, or a whole completion (with \\boxed{})");
  cmd->add_option("--index", a.index, "With --verify: the problem's index (default 0)");
  cmd->add_option("--reward", a.reward, "With --verify and a completion: reward config (key=value,... or a JSON file)");
}

}  // namespace r1::cli
