#include "recipe/pipeline.h"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <system_error>

#include "core/file.h"
#include "core/log.h"

namespace r1::recipe {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct StageInfo {
  const char* name;
  StageFn fn;
};

// In StageNames() order.
const StageInfo kStages[] = {
    {"data", RunDataStage},           {"tokenizer", RunTokenizerStage},   {"pretrain", RunPretrainStage},
    {"sft", RunSftStage},             {"grpo", RunGrpoStage},             {"rejection", RunRejectionStage},
    {"student-base", RunStudentBaseStage}, {"distill", RunDistillStage}, {"student-grpo", RunStudentGrpoStage},
    {"eval", RunEvalStage},           {"report", RunReportStage},
};
constexpr int kNumStages = static_cast<int>(sizeof(kStages) / sizeof(kStages[0]));

std::string RecordPath(const std::string& out, const std::string& stage) { return out + "/stages/" + stage + ".json"; }

std::string NowIso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

Status MakeDirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError(dir + ": cannot create directory: " + ec.message());
  return Status::Ok();
}

// One line saying what a stage is and what it will spend.
std::string Describe(const Recipe& r, const std::string& stage) {
  auto train = [](const TrainConfig& t) {
    return StrFormat("%lld steps x %lld rows x %lld tokens, lr %g %s", static_cast<long long>(t.steps),
                     static_cast<long long>(t.batch * t.grad_accum), static_cast<long long>(t.seq), t.lr,
                     t.schedule.c_str());
  };
  auto params = [](const ModelConfig& c) {
    const ModelStats s = ComputeStats(c);
    return StrFormat("%.2fM params, %.2fM active", s.total_params / 1e6, s.active_params / 1e6);
  };
  if (stage == "data")
    return StrFormat("generate %lld pretraining documents and %lld cold-start chats (%s)",
                     static_cast<long long>(r.data.pretrain_problems), static_cast<long long>(r.data.sft_chats),
                     r.task.name.c_str());
  if (stage == "tokenizer")
    return StrFormat("train a byte-level BPE, vocab %lld, digits %s", static_cast<long long>(r.tokenizer.vocab_size),
                     r.tokenizer.digits.c_str());
  if (stage == "pretrain") return "MoE+MLA teacher from random init (" + params(r.teacher) + "), " + train(r.pretrain);
  if (stage == "sft") return "cold-start SFT on chain-of-thought chats, " + train(r.sft);
  if (stage == "grpo")
    return StrFormat("GRPO with verifiable rewards, %lld steps x %lld prompts x %lld completions, lr %g",
                     static_cast<long long>(r.grpo.steps), static_cast<long long>(r.grpo.prompts_per_step),
                     static_cast<long long>(r.grpo.group), r.grpo.lr);
  if (stage == "rejection")
    return StrFormat("rejection sampling from the GRPO model, %lld problems x %lld samples",
                     static_cast<long long>(r.rejection.problems), static_cast<long long>(r.rejection.samples));
  if (stage == "student-base") return "dense student from random init (" + params(r.student) + "), " + train(r.student_pretrain);
  if (stage == "distill")
    return StrFormat("distill into the student by SFT on the rejection-sampled traces%s, ",
                     r.distill.logit_weight > 0 ? StrFormat(" + %g x logit KL", r.distill.logit_weight).c_str() : "") +
           train(r.distill.train);
  if (stage == "student-grpo")
    return StrFormat("baseline: GRPO on the student base alone, up to %lld steps, %s",
                     static_cast<long long>(r.student_grpo.grpo.steps),
                     r.student_grpo.match_distill_time ? "for the distill stage's wall-clock" : "own time budget");
  if (stage == "eval")
    return StrFormat("evaluate every model on %lld held-out problems x %lld samples (temperature %g)",
                     static_cast<long long>(r.eval.problems), static_cast<long long>(r.eval.samples), r.eval.temperature);
  return "write report.json, report.md and report.html";
}

}  // namespace

Status WriteJson(const std::string& path, const json& j) { return WriteFileAtomic(path, j.dump(2) + "\n"); }

Result<json> ReadJson(const std::string& path) {
  R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return DataLoss(path + ": not valid JSON");
  return j;
}

Result<json> StageContext::Record(const std::string& stage) const {
  if (!records.contains(stage)) return NotFound("stage " + stage + " has not finished (no " + RecordPath(out, stage) + ")");
  return records[stage];
}

Result<json> RunRecipe(const RunOptions& opts) {
  Timer wall;
  // ---- the recipe, and the one this directory was made with
  std::string text = DefaultRecipeText(), source = "built-in recipe";
  if (!opts.recipe_path.empty()) {
    R1_ASSIGN_OR_RETURN(text, ReadFileToString(opts.recipe_path));
    source = opts.recipe_path;
  }
  R1_ASSIGN_OR_RETURN(Recipe recipe, ParseRecipe(text, source));
  const json recipe_json = json::parse(text, nullptr, false, /*ignore_comments=*/true);
  int start = -1;
  if (!opts.from.empty()) {
    R1_ASSIGN_OR_RETURN(start, StageIndex(opts.from));
  }
  R1_RETURN_IF_ERROR(MakeDirs(opts.out + "/stages"));
  const std::string saved_path = opts.out + "/recipe.json";
  if (FileExists(saved_path)) {
    R1_ASSIGN_OR_RETURN(json saved, ReadJson(saved_path));
    if (saved != recipe_json && start < 0)
      return InvalidArgument(saved_path + ": " + opts.out + " was made with a different recipe than " + source +
                             "; pass --from STAGE to rerun from a stage with this recipe, or choose another --out");
  }
  R1_RETURN_IF_ERROR(WriteJson(saved_path, recipe_json));

  // ---- finished stages
  StageContext ctx{recipe, opts.out};
  for (int i = 0; i < kNumStages; ++i) {
    const std::string path = RecordPath(opts.out, kStages[i].name);
    if (start >= 0 && i >= start) {  // rerun: so is every record after an unfinished stage
      std::error_code ec;
      fs::remove(path, ec);
      continue;
    }
    if (!FileExists(path)) {
      if (start >= 0)
        return InvalidArgument(StrFormat("--from %s: the earlier stage %s has not finished in %s; run without --from first",
                                         opts.from.c_str(), kStages[i].name, opts.out.c_str()));
      start = i;
      continue;
    }
    R1_ASSIGN_OR_RETURN(json rec, ReadJson(path));
    ctx.records[kStages[i].name] = std::move(rec);
  }
  if (start < 0) start = kNumStages;
  if (start == kNumStages) LogInfo("run %s: every stage has finished (--from STAGE reruns one)", opts.out.c_str());
  else if (start > 0) LogInfo("run %s: resuming at stage %s (%d of %d done)", opts.out.c_str(), kStages[start].name, start, kNumStages);

  // ---- the stages
  for (int i = start; i < kNumStages; ++i) {
    const std::string name = kStages[i].name;
    LogInfo("== stage %d/%d %s: %s", i + 1, kNumStages, name.c_str(), Describe(recipe, name).c_str());
    Timer t;
    Result<json> rec = kStages[i].fn(ctx);
    if (!rec.ok())
      return Status(rec.status().code(), "stage " + name + " failed: " + rec.status().message() +
                                             " (earlier stages are kept; rerun to retry from " + name + ")");
    json r = std::move(rec).value();
    r["stage"] = name;
    if (!r.contains("seconds")) r["seconds"] = t.Seconds();
    r["stage_seconds"] = t.Seconds();
    r["finished_at"] = NowIso();
    R1_RETURN_IF_ERROR(WriteJson(RecordPath(opts.out, name), r));
    ctx.records[name] = r;
    LogInfo("== stage %s done in %.1f s", name.c_str(), t.Seconds());
  }
  LogInfo("run %s finished (this invocation %.1f s); report: %s/report.html", opts.out.c_str(), wall.Seconds(),
          opts.out.c_str());
  return ReadJson(opts.out + "/report.json");
}

}  // namespace r1::recipe
