// `r1 run`: the whole R1 recipe, stage by stage, into one output directory.
//
//   data → tokenizer → pretrain → sft → grpo → rejection → student-base → distill → student-grpo
//   → eval → report
//
// Layout of OUT: recipe.json (the recipe the directory was made with), data/*.jsonl, tokenizer/,
// config/{teacher,student}.json, one HF checkpoint per model stage (base, sft, grpo, student-base,
// student, student-grpo), metrics/STAGE.jsonl (the trainers' per-step lines), stages/STAGE.json
// (the record a stage writes when it finishes) and report.{json,md,html}.
//
// Resuming: a stage with a record is done. A run starts at the first stage without one (or at
// --from, whose record and every later one are removed first) and runs every stage after it. A
// failing stage stops the run; the records and outputs of earlier stages stay as they were.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "core/status.h"
#include "recipe/recipe.h"

namespace r1::recipe {

struct RunOptions {
  std::string out = "runs/default";
  std::string recipe_path;  // "" = the built-in recipe
  std::string from;         // "" = resume after the last finished stage
};

// What every stage sees: the recipe, the output directory and the records of finished stages.
struct StageContext {
  const Recipe& recipe;
  std::string out;
  nlohmann::json records = nlohmann::json::object();  // stage name → its record

  std::string Path(const std::string& rel) const { return out + "/" + rel; }
  // The record of a finished stage (an error naming it when missing).
  Result<nlohmann::json> Record(const std::string& stage) const;
};

// A stage: does its work and returns the fields of its record ("seconds" is added by the runner).
using StageFn = Result<nlohmann::json> (*)(StageContext& ctx);

// Stage bodies (stages_data.cc, stages_train.cc, report.cc).
Result<nlohmann::json> RunDataStage(StageContext& ctx);
Result<nlohmann::json> RunTokenizerStage(StageContext& ctx);
Result<nlohmann::json> RunPretrainStage(StageContext& ctx);
Result<nlohmann::json> RunSftStage(StageContext& ctx);
Result<nlohmann::json> RunGrpoStage(StageContext& ctx);
Result<nlohmann::json> RunRejectionStage(StageContext& ctx);
Result<nlohmann::json> RunStudentBaseStage(StageContext& ctx);
Result<nlohmann::json> RunDistillStage(StageContext& ctx);
Result<nlohmann::json> RunStudentGrpoStage(StageContext& ctx);
Result<nlohmann::json> RunEvalStage(StageContext& ctx);
Result<nlohmann::json> RunReportStage(StageContext& ctx);

// Runs the pipeline; returns the content of report.json.
Result<nlohmann::json> RunRecipe(const RunOptions& opts);

// Writes `j` (pretty) to `path` atomically.
Status WriteJson(const std::string& path, const nlohmann::json& j);
Result<nlohmann::json> ReadJson(const std::string& path);

}  // namespace r1::recipe
