#include "recipe/recipe.h"

#include <cmath>
#include <limits>
#include <set>

#include "core/file.h"
#include "rl/task.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

const char* TypeName(const json& j) {
  switch (j.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "a value";
  }
}

// Reads the keys of one JSON object with type checks; Finish() rejects the keys nobody asked for.
// Every error names "source: path.key".
class Section {
 public:
  Section(const json& obj, std::string source, std::string path)
      : obj_(obj), source_(std::move(source)), path_(std::move(path)) {}

  std::string Where(const std::string& key) const {
    return source_ + ": " + (path_.empty() ? key : path_ + "." + key);
  }

  const json* Get(const std::string& key, bool required, Status* st) {
    seen_.insert(key);
    auto it = obj_.find(key);
    if (it == obj_.end()) {
      if (required) *st = InvalidArgument(Where(key) + ": missing");
      return nullptr;
    }
    return &*it;
  }

  Status Int(const std::string& key, int64_t* out, int64_t min = std::numeric_limits<int64_t>::min()) {
    Status st;
    const json* v = Get(key, false, &st);
    if (v == nullptr) return st;
    if (!v->is_number_integer() && !v->is_number_unsigned())
      return InvalidArgument(Where(key) + ": expected an integer, got " + TypeName(*v));
    const int64_t x = v->get<int64_t>();
    if (x < min) return InvalidArgument(Where(key) + ": must be >= " + std::to_string(min) + ", got " + std::to_string(x));
    *out = x;
    return st;
  }
  Status Uint(const std::string& key, uint64_t* out) {
    int64_t x = static_cast<int64_t>(*out);
    R1_RETURN_IF_ERROR(Int(key, &x, 0));
    *out = static_cast<uint64_t>(x);
    return Status::Ok();
  }
  Status Double(const std::string& key, double* out, double min = -std::numeric_limits<double>::infinity()) {
    Status st;
    const json* v = Get(key, false, &st);
    if (v == nullptr) return st;
    if (!v->is_number()) return InvalidArgument(Where(key) + ": expected a number, got " + TypeName(*v));
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < min)
      return InvalidArgument(Where(key) + ": must be a finite number >= " + std::to_string(min));
    *out = x;
    return st;
  }
  Status Float(const std::string& key, float* out, double min = -std::numeric_limits<double>::infinity()) {
    double x = *out;
    R1_RETURN_IF_ERROR(Double(key, &x, min));
    *out = static_cast<float>(x);
    return Status::Ok();
  }
  Status Bool(const std::string& key, bool* out) {
    Status st;
    const json* v = Get(key, false, &st);
    if (v == nullptr) return st;
    if (!v->is_boolean()) return InvalidArgument(Where(key) + ": expected true or false, got " + TypeName(*v));
    *out = v->get<bool>();
    return st;
  }
  Status String(const std::string& key, std::string* out, const std::vector<std::string>& allowed = {},
                bool required = false) {
    Status st;
    const json* v = Get(key, required, &st);
    if (v == nullptr) return st;
    if (!v->is_string()) return InvalidArgument(Where(key) + ": expected a string, got " + TypeName(*v));
    std::string s = v->get<std::string>();
    if (!allowed.empty()) {
      bool ok = false;
      std::string list;
      for (const auto& a : allowed) {
        ok |= a == s;
        list += (list.empty() ? "" : ", ") + a;
      }
      if (!ok) return InvalidArgument(Where(key) + ": \"" + s + "\" is not one of " + list);
    }
    *out = std::move(s);
    return st;
  }
  // A required sub-object.
  Result<Section> Object(const std::string& key) {
    Status st;
    const json* v = Get(key, true, &st);
    if (v == nullptr) return st;
    if (!v->is_object()) return InvalidArgument(Where(key) + ": expected an object, got " + TypeName(*v));
    return Section(*v, source_, path_.empty() ? key : path_ + "." + key);
  }
  Status Finish() const {
    for (auto it = obj_.begin(); it != obj_.end(); ++it)
      if (!seen_.count(it.key())) return InvalidArgument(Where(it.key()) + ": unknown key");
    return Status::Ok();
  }
  const json& value() const { return obj_; }

 private:
  const json& obj_;
  std::string source_, path_;
  std::set<std::string> seen_;
};

Status ReadTrain(Section s, TrainConfig* c) {
  R1_RETURN_IF_ERROR(s.Int("steps", &c->steps, 1));
  R1_RETURN_IF_ERROR(s.Int("batch", &c->batch, 1));
  R1_RETURN_IF_ERROR(s.Int("seq", &c->seq, 2));
  R1_RETURN_IF_ERROR(s.Int("grad_accum", &c->grad_accum, 1));
  R1_RETURN_IF_ERROR(s.Int("warmup", &c->warmup, 0));
  R1_RETURN_IF_ERROR(s.Float("lr", &c->lr, 0));
  R1_RETURN_IF_ERROR(s.Float("min_lr", &c->min_lr, 0));
  R1_RETURN_IF_ERROR(s.Float("weight_decay", &c->weight_decay, 0));
  R1_RETURN_IF_ERROR(s.Float("clip", &c->clip, 0));
  R1_RETURN_IF_ERROR(s.String("schedule", &c->schedule, {"constant", "cosine"}));
  R1_RETURN_IF_ERROR(s.Double("mtp_weight", &c->mtp_weight));
  R1_RETURN_IF_ERROR(s.Double("balance_alpha", &c->balance_alpha, 0));
  R1_RETURN_IF_ERROR(s.Double("bias_update_speed", &c->bias_update_speed, 0));
  R1_RETURN_IF_ERROR(s.Double("init_std", &c->init_std, 0));
  if (!(c->lr > 0)) return InvalidArgument(s.Where("lr") + ": must be positive");
  if (!(c->init_std > 0)) return InvalidArgument(s.Where("init_std") + ": must be positive");
  if (c->min_lr > c->lr) return InvalidArgument(s.Where("min_lr") + ": must be <= lr");
  return s.Finish();
}

Status ReadGrpo(Section& s, GrpoConfig* c) {
  R1_RETURN_IF_ERROR(s.Int("steps", &c->steps, 1));
  R1_RETURN_IF_ERROR(s.Int("prompts_per_step", &c->prompts_per_step, 1));
  R1_RETURN_IF_ERROR(s.Int("group", &c->group, 2));
  R1_RETURN_IF_ERROR(s.Int("max_new_tokens", &c->max_new_tokens, 1));
  R1_RETURN_IF_ERROR(s.Int("micro_batch", &c->micro_batch, 1));
  R1_RETURN_IF_ERROR(s.Float("temperature", &c->temperature, 0));
  R1_RETURN_IF_ERROR(s.Float("top_p", &c->top_p, 0));
  R1_RETURN_IF_ERROR(s.Float("lr", &c->lr, 0));
  R1_RETURN_IF_ERROR(s.Float("weight_decay", &c->weight_decay, 0));
  R1_RETURN_IF_ERROR(s.Float("clip", &c->clip, 0));
  R1_RETURN_IF_ERROR(s.Double("beta", &c->beta, 0));
  R1_RETURN_IF_ERROR(s.Double("epsilon", &c->epsilon, 0));
  R1_RETURN_IF_ERROR(s.Double("epsilon_high", &c->epsilon_high));
  R1_RETURN_IF_ERROR(s.String("loss", &c->loss, {"token-mean", "seq-mean-token-mean", "dr-grpo"}));
  R1_RETURN_IF_ERROR(s.Int("mu", &c->mu, 1));
  R1_RETURN_IF_ERROR(s.Bool("dynamic_sampling", &c->dynamic_sampling));
  R1_RETURN_IF_ERROR(s.String("reward", &c->reward));
  if (!(c->temperature > 0)) return InvalidArgument(s.Where("temperature") + ": must be positive");
  if (!(c->lr > 0)) return InvalidArgument(s.Where("lr") + ": must be positive");
  if (!(c->top_p > 0) || c->top_p > 1) return InvalidArgument(s.Where("top_p") + ": must be in (0, 1]");
  return Status::Ok();
}

Result<ModelConfig> ReadModel(Section& top, const std::string& key, json* out) {
  Status st;
  const json* v = top.Get(key, true, &st);
  if (v == nullptr) return st;
  if (!v->is_object()) return InvalidArgument(top.Where(key) + ": expected an HF config.json object, got " + TypeName(*v));
  *out = *v;
  return ModelConfig::FromJson(v->dump(), top.Where(key));
}

}  // namespace

const std::vector<std::string>& StageNames() {
  static const std::vector<std::string> names = {"data",    "tokenizer",    "pretrain", "sft",
                                                  "grpo",    "rejection",    "student-base", "distill",
                                                  "student-grpo", "eval",   "report"};
  return names;
}

Result<int> StageIndex(const std::string& name) {
  const auto& names = StageNames();
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) return static_cast<int>(i);
    list += (i ? ", " : "") + names[i];
  }
  return UsageError("unknown stage \"" + name + "\" (stages: " + list + ")");
}

Result<Recipe> ParseRecipe(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (j.is_discarded()) return InvalidArgument(source + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(source + ": expected a JSON object");
  Recipe r;
  Section top(j, source, "");
  R1_RETURN_IF_ERROR(top.String("name", &r.name));
  R1_RETURN_IF_ERROR(top.Uint("seed", &r.seed));
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("task"));
    R1_RETURN_IF_ERROR(s.String("name", &r.task.name, {}, /*required=*/true));
    R1_RETURN_IF_ERROR(s.String("args", &r.task.args));
    R1_RETURN_IF_ERROR(s.Finish());
    auto task = rl::MakeTask(r.task.name, r.task.args);
    if (!task.ok()) return task.status().WithContext(s.Where("name"));
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("data"));
    R1_RETURN_IF_ERROR(s.Int("pretrain_problems", &r.data.pretrain_problems, 1));
    R1_RETURN_IF_ERROR(s.Int("sft_chats", &r.data.sft_chats, 1));
    R1_RETURN_IF_ERROR(s.Int("solution_variants", &r.data.solution_variants, 1));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("tokenizer"));
    R1_RETURN_IF_ERROR(s.Int("vocab_size", &r.tokenizer.vocab_size, 277));  // 256 bytes + 20 specials
    R1_RETURN_IF_ERROR(s.String("digits", &r.tokenizer.digits, {"single", "group3"}));
    R1_RETURN_IF_ERROR(s.Int("min_frequency", &r.tokenizer.min_frequency, 1));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  R1_ASSIGN_OR_RETURN(r.teacher, ReadModel(top, "teacher", &r.teacher_json));
  R1_ASSIGN_OR_RETURN(r.student, ReadModel(top, "student", &r.student_json));
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("pretrain"));
    R1_RETURN_IF_ERROR(ReadTrain(s, &r.pretrain));
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("sft"));
    R1_RETURN_IF_ERROR(ReadTrain(s, &r.sft));
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("grpo"));
    R1_RETURN_IF_ERROR(ReadGrpo(s, &r.grpo));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("rejection"));
    R1_RETURN_IF_ERROR(s.Int("problems", &r.rejection.problems, 1));
    R1_RETURN_IF_ERROR(s.Int("samples", &r.rejection.samples, 1));
    R1_RETURN_IF_ERROR(s.Int("keep_per_problem", &r.rejection.keep_per_problem, 1));
    R1_RETURN_IF_ERROR(s.Int("max_new_tokens", &r.rejection.max_new_tokens, 1));
    R1_RETURN_IF_ERROR(s.Float("temperature", &r.rejection.temperature, 0));
    R1_RETURN_IF_ERROR(s.Float("top_p", &r.rejection.top_p, 0));
    R1_RETURN_IF_ERROR(s.Bool("fill_with_reference", &r.rejection.fill_with_reference));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("student_pretrain"));
    R1_RETURN_IF_ERROR(ReadTrain(s, &r.student_pretrain));
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("distill"));
    R1_RETURN_IF_ERROR(s.Double("logit_weight", &r.distill.logit_weight, 0));
    R1_ASSIGN_OR_RETURN(Section t, s.Object("train"));
    R1_RETURN_IF_ERROR(ReadTrain(t, &r.distill.train));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("student_grpo"));
    R1_RETURN_IF_ERROR(ReadGrpo(s, &r.student_grpo.grpo));
    R1_RETURN_IF_ERROR(s.Bool("match_distill_time", &r.student_grpo.match_distill_time));
    R1_RETURN_IF_ERROR(s.Double("max_seconds", &r.student_grpo.max_seconds, 0));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  {
    R1_ASSIGN_OR_RETURN(Section s, top.Object("eval"));
    R1_RETURN_IF_ERROR(s.Int("problems", &r.eval.problems, 1));
    R1_RETURN_IF_ERROR(s.Int("samples", &r.eval.samples, 1));
    R1_RETURN_IF_ERROR(s.Int("max_new_tokens", &r.eval.max_new_tokens, 1));
    R1_RETURN_IF_ERROR(s.Int("examples", &r.eval.examples, 0));
    R1_RETURN_IF_ERROR(s.Float("temperature", &r.eval.temperature, 0));
    R1_RETURN_IF_ERROR(s.Float("top_p", &r.eval.top_p, 0));
    R1_RETURN_IF_ERROR(s.Uint("seed", &r.eval.seed));
    R1_RETURN_IF_ERROR(s.Finish());
  }
  R1_RETURN_IF_ERROR(top.Finish());

  // ---- consistency between sections
  if (r.teacher.n_routed_experts <= 0)
    return InvalidArgument(top.Where("teacher") + ": the teacher must be a MoE model (n_routed_experts > 0)");
  if (r.student.n_routed_experts > 0)
    return InvalidArgument(top.Where("student") + ": the student must be dense (n_routed_experts null or 0)");
  const int64_t ta = ComputeStats(r.teacher).active_params, sa = ComputeStats(r.student).active_params;
  if (2 * sa > ta)
    return InvalidArgument(top.Where("student") + ": " + std::to_string(sa) +
                           " activated parameters, more than half the teacher's " + std::to_string(ta));
  for (const auto& [key, c] : {std::pair<const char*, const ModelConfig*>{"teacher", &r.teacher}, {"student", &r.student}})
    if (c->vocab_size != r.tokenizer.vocab_size)
      return InvalidArgument(top.Where(std::string(key) + ".vocab_size") + ": " + std::to_string(c->vocab_size) +
                             " differs from tokenizer.vocab_size " + std::to_string(r.tokenizer.vocab_size));
  struct SeqCheck {
    const char* key;
    int64_t len;
    const ModelConfig* c;
  };
  const SeqCheck checks[] = {
      {"pretrain.seq", r.pretrain.seq, &r.teacher},
      {"sft.seq", r.sft.seq, &r.teacher},
      {"student_pretrain.seq", r.student_pretrain.seq, &r.student},
      {"distill.train.seq", r.distill.train.seq, &r.student},
  };
  for (const SeqCheck& s : checks)
    if (s.len > s.c->max_position_embeddings)
      return InvalidArgument(top.Where(s.key) + ": " + std::to_string(s.len) + " exceeds max_position_embeddings " +
                             std::to_string(s.c->max_position_embeddings));
  return r;
}

Result<Recipe> LoadRecipe(const std::string& path) {
  R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseRecipe(text, path);
}

}  // namespace r1::recipe
