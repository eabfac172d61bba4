// The data stages of `r1 run`: the generated corpus and cold-start chats, the tokenizer trained
// on the corpus, and rejection sampling from the GRPO model.
#include <filesystem>
#include <fstream>
#include <set>

#include "core/file.h"
#include "core/log.h"
#include "infer/rollout.h"
#include "model/deepseek_v3.h"
#include "recipe/pipeline.h"
#include "rl/eval.h"
#include "rl/reward.h"
#include "rl/task.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

json Chat(const std::string& user, const std::string& assistant) {
  return {{"messages", json::array({{{"role", "user"}, {"content", user}}, {{"role", "assistant"}, {"content", assistant}}})}};
}

Status MakeDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError(dir + ": cannot create directory: " + ec.message());
  return Status::Ok();
}

}  // namespace

// Pretraining documents "prompt\nworked solution" from training problems [0, P), and cold-start
// chats {user: prompt, assistant: worked solution} from the next, disjoint slice [P, P + S).
Result<json> RunDataStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  R1_ASSIGN_OR_RETURN(auto task, rl::MakeTask(r.task.name, r.task.args));
  R1_RETURN_IF_ERROR(MakeDir(ctx.Path("data")));
  const uint64_t variants = static_cast<uint64_t>(r.data.solution_variants);
  std::string corpus, sft;
  for (int64_t i = 0; i < r.data.pretrain_problems; ++i) {
    const rl::Problem p = task->Generate(rl::Split::kTrain, static_cast<uint64_t>(i));
    corpus += json({{"text", p.prompt + "\n" + task->Solution(p, static_cast<uint64_t>(i) % variants)}}).dump() + "\n";
  }
  for (int64_t i = r.data.pretrain_problems; i < r.data.pretrain_problems + r.data.sft_chats; ++i) {
    const rl::Problem p = task->Generate(rl::Split::kTrain, static_cast<uint64_t>(i));
    sft += Chat(p.prompt, task->Solution(p, static_cast<uint64_t>(i) % variants)).dump() + "\n";
  }
  R1_RETURN_IF_ERROR(WriteFileAtomic(ctx.Path("data/corpus.jsonl"), corpus));
  R1_RETURN_IF_ERROR(WriteFileAtomic(ctx.Path("data/sft.jsonl"), sft));
  LogInfo("data: %lld documents (%.1f MB) in %s, %lld chats in %s", static_cast<long long>(r.data.pretrain_problems),
          static_cast<double>(corpus.size()) / 1e6, ctx.Path("data/corpus.jsonl").c_str(),
          static_cast<long long>(r.data.sft_chats), ctx.Path("data/sft.jsonl").c_str());
  return json{{"corpus", ctx.Path("data/corpus.jsonl")},
              {"sft", ctx.Path("data/sft.jsonl")},
              {"documents", r.data.pretrain_problems},
              {"chats", r.data.sft_chats},
              {"corpus_bytes", corpus.size()}};
}

Result<json> RunTokenizerStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  tok::BpeTrainerOptions o;
  o.vocab_size = static_cast<int>(r.tokenizer.vocab_size);
  o.digits = r.tokenizer.digits == "single" ? tok::DigitSplit::kSingle : tok::DigitSplit::kGroup3;
  o.min_frequency = static_cast<int>(r.tokenizer.min_frequency);
  R1_ASSIGN_OR_RETURN(auto trainer, tok::BpeTrainer::Create(o));
  const std::string corpus = ctx.Path("data/corpus.jsonl");
  std::ifstream in(corpus);
  if (!in) return IoError(corpus + ": cannot open");
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.contains("text") || !j["text"].is_string())
      return DataLoss(corpus + ":" + std::to_string(lineno) + ": expected {\"text\": ...}");
    trainer->AddText(j["text"].get<std::string>());
  }
  R1_ASSIGN_OR_RETURN(tok::TrainedBpe bpe, trainer->Train());
  if (static_cast<int64_t>(bpe.tokens.size()) > r.tokenizer.vocab_size)
    return Internal("the trained tokenizer has more tokens than tokenizer.vocab_size");
  R1_RETURN_IF_ERROR(tok::WriteTrainedTokenizer(bpe, ctx.Path("tokenizer")));
  // Check it loads and count how long the documents are in tokens.
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(ctx.Path("tokenizer")));
  LogInfo("tokenizer: %zu tokens (%zu merges) from %.1f MB in %s", bpe.tokens.size(), bpe.merges.size(),
          static_cast<double>(bpe.corpus_bytes) / 1e6, ctx.Path("tokenizer").c_str());
  return json{{"dir", ctx.Path("tokenizer")},
              {"vocab_size", bpe.tokens.size()},
              {"merges", bpe.merges.size()},
              {"corpus_bytes", bpe.corpus_bytes}};
}

// k samples per training problem from the GRPO model; keeps the verified-correct, well-formed
// ones (up to keep_per_problem distinct traces per problem) as chats for distillation.
Result<json> RunRejectionStage(StageContext& ctx) {
  const Recipe& r = ctx.recipe;
  const RejectionConfig& rc = r.rejection;
  R1_ASSIGN_OR_RETURN(auto task, rl::MakeTask(r.task.name, r.task.args));
  const std::string model_dir = ctx.Path("grpo");
  R1_ASSIGN_OR_RETURN(auto model, DeepSeekV3::Load(model_dir));
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(model_dir));
  // Problems after the pretraining and SFT slices: none of them was seen with a reference solution.
  const int64_t first = r.data.pretrain_problems + r.data.sft_chats;
  R1_ASSIGN_OR_RETURN(rl::PromptSet set,
                      rl::MakePromptSet(*tokenizer, *task, rl::Split::kTrain, static_cast<uint64_t>(first), rc.problems));
  const std::vector<rl::Problem>& problems = set.problems;
  const std::vector<std::vector<int32_t>>& prompts = set.prompts;
  const RolloutOptions ro = rl::SamplingOptions(*tokenizer, rc.samples, rc.max_new_tokens, rc.temperature, rc.top_p,
                                                r.seed * 1000003ull + 5);
  // In chunks, so progress shows.
  const int64_t chunk = std::max<int64_t>(1, 256 / rc.samples);
  std::vector<Completion> comps;
  Timer timer;
  for (int64_t p0 = 0; p0 < rc.problems; p0 += chunk) {
    const int64_t n = std::min(chunk, rc.problems - p0);
    std::vector<std::vector<int32_t>> part(prompts.begin() + p0, prompts.begin() + p0 + n);
    RolloutOptions o = ro;
    o.seed = ro.seed + static_cast<uint64_t>(p0 * rc.samples);
    R1_ASSIGN_OR_RETURN(std::vector<Completion> c, SampleCompletions(*model, part, o));
    comps.insert(comps.end(), c.begin(), c.end());
    const double el = timer.Seconds();
    LogInfo("rejection: %lld/%lld problems sampled  ETA %.0fs", static_cast<long long>(p0 + n),
            static_cast<long long>(rc.problems), el / static_cast<double>(p0 + n) * static_cast<double>(rc.problems - p0 - n));
  }
  rl::RewardConfig reward;
  int64_t correct = 0, well_formed = 0, accepted = 0, solved = 0, reference_chats = 0;
  std::string out;
  for (int64_t p = 0; p < rc.problems; ++p) {
    std::set<std::string> kept;
    for (int64_t k = 0; k < rc.samples; ++k) {
      const Completion& c = comps[static_cast<size_t>(p * rc.samples + k)];
      const std::string text = rl::CompletionText(*tokenizer, c.ids, c.stopped);
      const rl::Reward rw = rl::ComputeReward(*task, problems[p], text, static_cast<int64_t>(c.ids.size()), reward);
      correct += rw.correct;
      well_formed += rw.well_formed;
      if (!rw.correct || !rw.well_formed || !c.stopped) continue;
      ++accepted;
      if (static_cast<int64_t>(kept.size()) >= rc.keep_per_problem || !kept.insert(text).second) continue;
      out += Chat(problems[p].prompt, "<think>\n" + text).dump() + "\n";
    }
    solved += !kept.empty();
    if (kept.empty() && rc.fill_with_reference) {  // smoke-test recipes: keep the pipeline fed
      out += Chat(problems[p].prompt, task->Solution(problems[p], static_cast<uint64_t>(p))).dump() + "\n";
      ++reference_chats;
    }
  }
  const int64_t chats = [&] {
    int64_t n = 0;
    for (char ch : out) n += ch == '\n';
    return n;
  }();
  const double total = static_cast<double>(rc.problems * rc.samples);
  LogInfo("rejection: accepted %lld of %lld samples (%.1f%% correct, %.1f%% well formed), %lld of %lld problems "
          "solved, %lld chats (%lld reference solutions)",
          static_cast<long long>(accepted), static_cast<long long>(rc.problems * rc.samples), 100.0 * correct / total,
          100.0 * well_formed / total, static_cast<long long>(solved), static_cast<long long>(rc.problems),
          static_cast<long long>(chats), static_cast<long long>(reference_chats));
  if (chats == 0)
    return InvalidArgument(StrFormat("no sample of the GRPO model was correct and well formed (%lld tried); "
                                     "nothing to distill — train the teacher longer or raise rejection.samples",
                                     static_cast<long long>(rc.problems * rc.samples)));
  R1_RETURN_IF_ERROR(WriteFileAtomic(ctx.Path("data/rejection.jsonl"), out));
  return json{{"file", ctx.Path("data/rejection.jsonl")},
              {"problems", rc.problems},
              {"samples", rc.problems * rc.samples},
              {"correct_rate", correct / total},
              {"format_rate", well_formed / total},
              {"acceptance_rate", static_cast<double>(accepted) / total},
              {"problems_solved", solved},
              {"chats", chats},
              {"reference_chats", reference_chats}};
}

}  // namespace r1::recipe
