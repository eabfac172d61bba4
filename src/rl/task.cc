#include "rl/task.h"

#include "rl/tasks.h"

namespace r1::rl {

std::string ThinkFormat(const std::string& steps, const std::string& final_answer) {
  return "<think>\n" + steps + "\n</think>\n\n" + final_answer;
}

std::string Boxed(const std::string& s) { return "\\boxed{" + s + "}"; }

std::vector<std::string> TaskNames() { return {"arithmetic", "countdown", "linear", "sort"}; }

const char* SplitName(Split split) { return split == Split::kTrain ? "train" : "heldout"; }

Result<Split> ParseSplit(std::string_view text) {
  if (text == "train") return Split::kTrain;
  if (text == "heldout" || text == "held-out" || text == "test") return Split::kHeldOut;
  return InvalidArgument("split: expected train or heldout, got '" + std::string(text) + "'");
}

namespace {

Result<std::unique_ptr<Task>> Dispatch(const std::string& name, TaskArgs& args) {
  if (name.rfind("jsonl:", 0) == 0) {
    const std::string path = name.substr(6);
    if (path.empty()) return InvalidArgument("task jsonl:PATH: the path is empty");
    return MakeJsonlTask(path, args);
  }
  if (name == "arithmetic") return MakeArithmeticTask(args);
  if (name == "countdown") return MakeCountdownTask(args);
  if (name == "linear") return MakeLinearTask(args);
  if (name == "sort") return MakeSortTask(args);
  return InvalidArgument("unknown task '" + name + "' (expected arithmetic, countdown, linear, sort or jsonl:PATH)");
}

}  // namespace

Result<std::unique_ptr<Task>> MakeTask(const std::string& name, const std::string& args) {
  R1_ASSIGN_OR_RETURN(TaskArgs parsed, TaskArgs::Parse(name.rfind("jsonl:", 0) == 0 ? "jsonl" : name, args));
  R1_ASSIGN_OR_RETURN(std::unique_ptr<Task> task, Dispatch(name, parsed));
  R1_RETURN_IF_ERROR(parsed.CheckAllUsed());
  return task;
}

}  // namespace r1::rl
