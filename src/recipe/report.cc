// The eval and report stages of `r1 run`.
#include "recipe/report.h"

#include <fstream>

#include "core/file.h"
#include "core/log.h"
#include "model/deepseek_v3.h"
#include "recipe/pipeline.h"
#include "rl/eval.h"
#include "rl/task.h"
#include "tokenizer/tokenizer.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

double Num(const json& j, const char* key) { return j.contains(key) && j[key].is_number() ? j[key].get<double>() : 0.0; }

std::string Pct(double x) { return StrFormat("%.1f%%", 100 * x); }

std::string RenderMarkdown(const json& rep) {
  std::string md = "# r1 run — " + rep["recipe"].get<std::string>() + "\n\n";
  md += StrFormat("Task `%s` (`%s`); %lld held-out problems x %lld samples; whole run %.1f s.\n\n",
                  rep["task"].get<std::string>().c_str(), rep["task_args"].get<std::string>().c_str(),
                  static_cast<long long>(rep["heldout_problems"].get<int64_t>()),
                  static_cast<long long>(rep["samples_per_problem"].get<int64_t>()), Num(rep, "wall_seconds"));
  md += "| model | pass@1 | majority | format | mean length | active params | train seconds |\n";
  md += "|---|---:|---:|---:|---:|---:|---:|\n";
  for (const ReportModel& m : ReportModels()) {
    if (!rep["stages"].contains(m.key)) continue;
    const json& s = rep["stages"][m.key];
    md += StrFormat("| %s | %s | %s | %s | %.1f | %lld | %.1f |\n", m.label, Pct(Num(s, "pass1")).c_str(),
                    Pct(Num(s, "majority")).c_str(), Pct(Num(s, "format_rate")).c_str(), Num(s, "mean_length"),
                    static_cast<long long>(s["active_params"].get<int64_t>()), Num(s, "seconds"));
  }
  const json& f = rep["findings"];
  md += "\n## Findings\n\n";
  md += StrFormat("- GRPO vs SFT: %+.1f points of pass@1 (target: >= +15).\n", 100 * Num(f, "grpo_minus_sft"));
  md += StrFormat("- Student keeps %.0f%% of the GRPO model's pass@1 (target: >= 80%%) with %.0f%% of its activated "
                  "parameters (limit 50%%).\n",
                  100 * Num(f, "student_retention"), 100 * Num(f, "student_active_fraction"));
  md += StrFormat("- Distillation vs GRPO on the student for the same wall-clock: %s vs %s — %s.\n",
                  Pct(Num(rep["stages"]["student"], "pass1")).c_str(),
                  Pct(Num(rep["stages"]["student_grpo"], "pass1")).c_str(),
                  f["distill_beats_rl"].get<bool>() ? "distillation wins (as in the R1 paper)"
                                                    : "distillation does not win here");
  if (rep.contains("rejection"))
    md += StrFormat("- Rejection sampling kept %lld chats (acceptance %s of %lld samples).\n",
                    static_cast<long long>(rep["rejection"]["chats"].get<int64_t>()),
                    Pct(Num(rep["rejection"], "acceptance_rate")).c_str(),
                    static_cast<long long>(rep["rejection"]["samples"].get<int64_t>()));
  md += "\n## Sample reasoning\n";
  for (const ReportModel& m : ReportModels()) {
    if (!rep["stages"].contains(m.key)) continue;
    for (const json& e : rep["stages"][m.key]["examples"]) {
      md += StrFormat("\n**%s** — %s (expected %s, %s)\n\n```\n%s\n```\n", m.label, e["prompt"].get<std::string>().c_str(),
                      e["expected"].get<std::string>().c_str(), e["correct"].get<bool>() ? "correct" : "wrong",
                      e["completion"].get<std::string>().c_str());
      break;  // one per model in the markdown; the HTML has them all
    }
  }
  return md;
}

}  // namespace

const std::vector<ReportModel>& ReportModels() {
  static const std::vector<ReportModel> models = {
      {"base", "base", "pretrain", "base (pretrained)"},
      {"sft", "sft", "sft", "SFT (cold start)"},
      {"grpo", "grpo", "grpo", "GRPO"},
      {"student", "student", "distill", "student (distilled)"},
      {"student_grpo", "student-grpo", "student-grpo", "student (GRPO only)"},
  };
  return models;
}

std::vector<json> ReadMetrics(const std::string& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) rows.push_back(std::move(j));
  }
  return rows;
}

Result<json> RunEvalStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  R1_ASSIGN_OR_RETURN(auto task, rl::MakeTask(r.task.name, r.task.args));
  rl::EvalOptions eo;
  eo.n = r.eval.problems;
  eo.samples = r.eval.samples;
  eo.temperature = r.eval.temperature;
  eo.top_p = r.eval.top_p;
  eo.max_new_tokens = r.eval.max_new_tokens;
  eo.seed = r.eval.seed;
  eo.keep_examples = r.eval.examples;
  eo.split = rl::Split::kHeldOut;
  json models = json::object();
  for (const ReportModel& m : ReportModels()) {
    const std::string dir = ctx.Path(m.dir);
    R1_ASSIGN_OR_RETURN(auto model, DeepSeekV3::Load(dir));
    R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(dir));
    R1_ASSIGN_OR_RETURN(rl::EvalResult e, rl::Evaluate(*model, *tokenizer, *task, eo));
    json ex = json::array();
    for (const auto& x : e.examples)
      ex.push_back({{"prompt", x.prompt}, {"completion", x.completion}, {"expected", x.expected}, {"correct", x.correct}});
    models[m.key] = {{"checkpoint", dir},       {"pass1", e.pass1},         {"majority", e.majority},
                     {"format_rate", e.format_rate}, {"mean_length", e.mean_length}, {"eval_seconds", e.seconds},
                     {"examples", ex}};
    LogInfo("eval %-13s pass@1 %5.1f%%  majority %5.1f%%  format %5.1f%%  length %.0f  (%.1f s)", m.key, 100 * e.pass1,
            100 * e.majority, 100 * e.format_rate, e.mean_length, e.seconds);
  }
  return json{{"models", models}, {"problems", eo.n}, {"samples", eo.samples}};
}

Result<json> RunReportStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  R1_ASSIGN_OR_RETURN(json eval, ctx.Record("eval"));
  json rep;
  rep["recipe"] = r.name;
  rep["task"] = r.task.name;
  rep["task_args"] = r.task.args;
  rep["heldout_problems"] = eval["problems"];
  rep["samples_per_problem"] = eval["samples"];
  rep["stages"] = json::object();
  for (const ReportModel& m : ReportModels()) {
    R1_ASSIGN_OR_RETURN(json rec, ctx.Record(m.stage));
    json s = eval["models"][m.key];
    s["seconds"] = rec["seconds"];
    s["stage"] = m.stage;
    s["active_params"] = rec["active_params"];
    s["total_params"] = rec["total_params"];
    rep["stages"][m.key] = s;
  }
  // The student's own pretraining and GRPO's step counts, for context.
  R1_ASSIGN_OR_RETURN(json sb, ctx.Record("student-base"));
  rep["stages"]["student"]["pretrain_seconds"] = sb["seconds"];
  R1_ASSIGN_OR_RETURN(json sg, ctx.Record("student-grpo"));
  rep["stages"]["student_grpo"]["steps"] = sg["steps"];
  R1_ASSIGN_OR_RETURN(json rej, ctx.Record("rejection"));
  rep["rejection"] = rej;
  double wall = 0;
  for (const auto& [name, rec] : ctx.records.items()) wall += Num(rec, "stage_seconds");
  rep["wall_seconds"] = wall;
  const json& st = rep["stages"];
  const double grpo = Num(st["grpo"], "pass1"), sft = Num(st["sft"], "pass1"), student = Num(st["student"], "pass1");
  rep["findings"] = {
      {"grpo_minus_sft", grpo - sft},
      {"student_retention", grpo > 0 ? student / grpo : 0.0},
      {"student_active_fraction", Num(st["student"], "active_params") / std::max(1.0, Num(st["grpo"], "active_params"))},
      {"distill_beats_rl", student > Num(st["student_grpo"], "pass1")},
  };
  R1_RETURN_IF_ERROR(WriteJson(ctx.Path("report.json"), rep));
  R1_RETURN_IF_ERROR(WriteFileAtomic(ctx.Path("report.md"), RenderMarkdown(rep)));
  R1_RETURN_IF_ERROR(WriteFileAtomic(ctx.Path("report.html"), RenderReportHtml(rep, ctx.out)));
  for (const ReportModel& m : ReportModels())
    LogInfo("report %-22s pass@1 %5.1f%%", m.label, 100 * Num(st[m.key], "pass1"));
  return json{{"report", ctx.Path("report.json")}, {"html", ctx.Path("report.html")}, {"md", ctx.Path("report.md")}};
}

}  // namespace r1::recipe
