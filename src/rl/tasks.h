// Factories of the task families (one file each); MakeTask (task.cc) dispatches on the name.
// Each reads its keys from `args`; MakeTask then rejects keys nobody asked for.
#pragma once

#include <memory>
#include <string>

#include "rl/task.h"
#include "rl/task_args.h"

namespace r1::rl {

Result<std::unique_ptr<Task>> MakeArithmeticTask(TaskArgs& args);  // arithmetic_task.cc
Result<std::unique_ptr<Task>> MakeCountdownTask(TaskArgs& args);   // countdown_task.cc
Result<std::unique_ptr<Task>> MakeLinearTask(TaskArgs& args);      // linear_task.cc
Result<std::unique_ptr<Task>> MakeSortTask(TaskArgs& args);        // sort_task.cc
Result<std::unique_ptr<Task>> MakeJsonlTask(const std::string& path, TaskArgs& args);  // jsonl_task.cc

// Helpers shared by the solution writers.
// "<think>\n" + steps + "\n</think>\n\n" + final_answer.
std::string ThinkFormat(const std::string& steps, const std::string& final_answer);
// "\\boxed{" + s + "}".
std::string Boxed(const std::string& s);

}  // namespace r1::rl
