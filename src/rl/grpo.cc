#include "rl/grpo.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <nlohmann/json.hpp>

#include <omp.h>

#include "core/file.h"
#include "core/log.h"
#include "core/memory.h"
#include "core/threads.h"
#include "infer/rollout.h"
#include "io/safetensors.h"
#include "model/deepseek_v3.h"
#include "model/parameters.h"
#include "model/train_graph.h"
#include "rl/eval.h"
#include "rl/reward.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace r1::rl {
namespace {

using json = nlohmann::json;

// One sampled completion with everything the update needs.
struct Sample {
  int64_t group = 0;
  std::vector<int32_t> prompt, ids;
  std::vector<float> old_logp, ref_logp;
  double reward = 0, advantage = 0;
  bool correct = false, well_formed = false, stopped = false;
  int64_t tape_prompt_row = -1, tape_row = -1;  // Completion's rows on the step's FfnTape
};

Status Validate(const GrpoOptions& o) {
  if (o.init.empty()) return UsageError("--init is required");
  if (o.out.empty()) return UsageError("--out is required");
  if (o.task.empty()) return UsageError("--task is required");
  if (o.steps < 1) return UsageError("--steps must be >= 1");
  if (o.max_seconds < 0) return UsageError("max_seconds must be >= 0");
  if (o.prompts_per_step < 1 || o.group < 2) return UsageError("--prompts-per-step must be >= 1 and --group >= 2");
  if (o.max_new_tokens < 1) return UsageError("--max-new-tokens must be >= 1");
  if (!(o.lr > 0)) return UsageError("--lr must be positive");
  if (o.beta < 0) return UsageError("--beta must be >= 0");
  if (!(o.epsilon > 0)) return UsageError("--epsilon must be positive");
  if (o.mu < 1) return UsageError("--mu must be >= 1");
  if (!(o.temperature > 0)) return UsageError("--temperature must be positive for GRPO sampling");
  return Status::Ok();
}

// A micro-batch as one row of shared prefixes: for each group's samples, the prompt but its last
// token once (the prefix), then per sample the prompt's last token and the completion but its last
// token (continuing the prefix), each position predicting the next completion token. The prompt's
// tokens run through the model once per group instead of once per completion, and rows need no
// padding. first[r] = the position predicting sample r's first completion token. tape_rows: each
// position's row on the rollout's FfnTape (empty when the samples have none).
struct MicroBatch {
  TrainBatch batch;
  std::vector<int64_t> first;
  std::vector<int64_t> tape_rows;
};

// Whether b continues a's prompt: a micro-batch runs their shared prompt through the model once.
bool SamePrompt(const Sample& a, const Sample& b) { return a.group == b.group && a.prompt == b.prompt; }

MicroBatch MakeBatch(const std::vector<Sample*>& rows) {
  MicroBatch m;
  TrainBatch& b = m.batch;
  b.B = 1;
  const bool taped = std::all_of(rows.begin(), rows.end(), [](const Sample* s) { return s->tape_row >= 0; });
  auto push = [&](int32_t id, int32_t target, int32_t doc, int32_t prefix, int64_t tape_row) {
    b.ids.push_back(id);
    b.targets.push_back(target);
    b.doc.push_back(doc);
    b.prefix.push_back(prefix);
    if (taped) m.tape_rows.push_back(tape_row);
  };
  int32_t doc = 0, prefix_doc = -1;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Sample& s = *rows[r];
    const size_t P = s.prompt.size();
    const bool same_prompt = r > 0 && SamePrompt(*rows[r - 1], s);
    if (!same_prompt) {
      prefix_doc = P > 1 ? doc++ : -1;
      for (size_t i = 0; i + 1 < P; ++i)
        push(s.prompt[i], -1, prefix_doc, -1, s.tape_prompt_row + static_cast<int64_t>(i));
    }
    m.first.push_back(static_cast<int64_t>(b.ids.size()));
    if (s.ids.empty()) continue;  // nothing to predict (the rollout samples at least one token)
    const int32_t d = doc++;
    push(s.prompt.back(), s.ids[0], d, prefix_doc, s.tape_prompt_row + static_cast<int64_t>(P) - 1);
    for (size_t j = 0; j + 1 < s.ids.size(); ++j)
      push(s.ids[j], s.ids[j + 1], d, prefix_doc, s.tape_row + static_cast<int64_t>(j));
  }
  b.T = static_cast<int64_t>(b.ids.size());
  return m;
}

}  // namespace

TokenTerms GrpoTokenTerms(double logp, double old_logp, bool has_ref, double ref_logp, double advantage,
                          double eps_low, double eps_high, double beta) {
  TokenTerms t;
  const double ratio = std::exp(logp - old_logp), A = advantage;
  const double unclipped = ratio * A;
  const double clipped_ratio = std::clamp(ratio, 1.0 - eps_low, 1.0 + eps_high);
  t.clipped = clipped_ratio * A < unclipped;
  const double J = t.clipped ? clipped_ratio * A : unclipped;
  t.loss = -J;
  t.coef = t.clipped ? 0.0 : -ratio * A;  // ∂(−J)/∂logp
  if (has_ref) {
    const double d = ref_logp - logp;
    t.kl = std::exp(d) - d - 1.0;
    t.loss += beta * t.kl;
    t.coef += beta * (1.0 - std::exp(d));
  }
  return t;
}

std::vector<std::vector<int64_t>> LaneBalancedMicroBatches(std::span<const SampleRun> runs, int64_t n_micro,
                                                           int64_t lanes, int64_t per) {
  if (lanes < 1 || n_micro < lanes || n_micro % lanes != 0 || per < 1) return {};
  std::vector<size_t> order(runs.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return runs[a].rows > runs[b].rows; });
  const int64_t cap = n_micro / lanes * per;  // samples a lane takes
  std::vector<int64_t> lane_rows(static_cast<size_t>(lanes), 0), lane_samples(static_cast<size_t>(lanes), 0);
  std::vector<std::vector<size_t>> lane_runs(static_cast<size_t>(lanes));
  for (size_t r : order) {
    int64_t best = -1;
    for (int64_t l = 0; l < lanes; ++l)
      if (lane_samples[l] + runs[r].samples <= cap && (best < 0 || lane_rows[l] < lane_rows[best])) best = l;
    if (best < 0) return {};
    lane_rows[best] += runs[r].rows;
    lane_samples[best] += runs[r].samples;
    lane_runs[best].push_back(r);
  }
  std::vector<int64_t> first(runs.size() + 1, 0);  // the runs' first sample indices
  for (size_t r = 0; r < runs.size(); ++r) first[r + 1] = first[r] + runs[r].samples;
  std::vector<std::vector<int64_t>> micro(static_cast<size_t>(n_micro));
  for (int64_t l = 0; l < lanes; ++l) {
    std::sort(lane_runs[l].begin(), lane_runs[l].end());
    int64_t k = 0;  // samples of this lane placed so far
    for (size_t r : lane_runs[l])
      for (int64_t i = first[r]; i < first[r + 1]; ++i, ++k)
        micro[static_cast<size_t>(l + k / per * lanes)].push_back(i);
  }
  return micro;
}

Result<GrpoSummary> RunGrpo(const GrpoOptions& opts, const std::function<void(const std::string&)>& on_step) {
  R1_RETURN_IF_ERROR(Validate(opts));
  R1_ASSIGN_OR_RETURN(auto task, MakeTask(opts.task, opts.task_args));
  RewardConfig rc;
  if (!opts.reward.empty()) {
    R1_ASSIGN_OR_RETURN(rc, ParseRewardConfig(opts.reward));
  }
  if (rc.max_tokens == 0) rc.max_tokens = opts.max_new_tokens;
  const std::string& source = opts.init;
  R1_ASSIGN_OR_RETURN(auto ck, io::Checkpoint::Open(source));
  R1_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromJson(ck->config_text(), source + "/config.json"));
  R1_ASSIGN_OR_RETURN(ParameterStore store, ParameterStore::FromCheckpoint(config, *ck));
  ck.reset();
  if (!FileExists(source + "/tokenizer.json")) return InvalidArgument(source + ": GRPO needs the checkpoint's tokenizer.json");
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(source));
  // The reference policy: a frozen copy (only when β > 0).
  std::unique_ptr<ParameterStore> ref;
  if (opts.beta > 0) {
    R1_ASSIGN_OR_RETURN(auto ck2, io::Checkpoint::Open(source));
    R1_ASSIGN_OR_RETURN(ParameterStore r, ParameterStore::FromCheckpoint(config, *ck2));
    ref = std::make_unique<ParameterStore>(std::move(r));
  }
  auto weights = store.Weights();
  auto grads = store.Grads();
  store.ZeroGrad();  // from here on each optimizer step leaves them zero
  std::unique_ptr<ModelWeights> ref_weights = ref ? ref->Weights() : nullptr;
  // The inference engine on the live weights: rollouts see every update. With bf16 products it
  // samples from a packed bf16 copy of the matrices (PackedBf16Weights), repacked after every
  // optimizer step, as the update's products round them to bf16. The update's forward multiplies
  // by the same copy (`update_weights`), and its backward by packed copies of the transposes: the
  // same bits as packing every weight afresh for each micro-batch's products.
  std::unique_ptr<PackedBf16Weights> packed;
  if (opts.precision == kernels::GemmPrecision::kBf16) {
    packed = std::make_unique<PackedBf16Weights>(*weights, /*transposed=*/true);
    if (!opts.quiet)
      LogInfo("grpo: rollout and update products in bf16 with f32 sums (%s)",
              kernels::Bf16EngineName(kernels::CurrentBf16Engine()));
  }
  DeepSeekV3 policy(config, packed ? packed->Views() : store.Weights());
  const std::unique_ptr<ModelWeights> packed_views = packed ? packed->Views() : nullptr;
  const ModelWeights& update_weights = packed_views ? *packed_views : *weights;
  train::AdamW opt(&store, train::AdamWConfig{0.9f, 0.95f, 1e-8f, opts.weight_decay, opts.clip});
  // Whether the update's threads each take whole micro-batches (see the update below).
  const bool lanes_fit =
      DecodeSplit(static_cast<uint64_t>(policy.DecodeMatrixBytes(DeepSeekV3::RoutedExperts::kAll)),
                  LastLevelCacheBytes(), std::max(1, omp_get_max_threads())) == RolloutOptions::Split::kSequences;
  std::vector<ParameterStore::GradCopy> grad_copies;  // one per lane after the first
  // The rollout's feed-forward activations for the first optimizer step of each batch (FfnTape),
  // as long as a step's rows fit in a quarter of the memory (a rollout that would go past it runs
  // without, and its samples' update computes the whole forward).
  std::unique_ptr<FfnTape> tape;
  if (opts.rollout_tape) tape = std::make_unique<FfnTape>(config, *weights);
  const double tape_budget = static_cast<double>(PhysicalMemoryBytes()) / 4;  // 0: unknown, no limit
  bool tape_over_budget_said = false;
  train::TrainerState state;
  state.stage = "grpo";
  state.seed = opts.seed;
  state.precision = opts.precision == kernels::GemmPrecision::kBf16 ? "bf16" : "f32";
  std::unique_ptr<FILE, int (*)(FILE*)> metrics(nullptr, &std::fclose);
  if (!opts.metrics.empty()) {
    metrics.reset(std::fopen(opts.metrics.c_str(), "a"));
    if (!metrics) return IoError(opts.metrics + ": cannot open for appending");
  }
  const double eps_low = opts.epsilon, eps_high = opts.epsilon_high >= 0 ? opts.epsilon_high : opts.epsilon;
  const int64_t P = opts.prompts_per_step, G = opts.group;
  uint64_t prompt_cursor = 0;
  GrpoSummary summary;
  Timer total;
  for (int64_t step = 0; step < opts.steps; ++step) {
    Timer t_rollout;
    // ---- rollouts (with dynamic sampling: keep groups whose rewards differ)
    std::vector<Sample> samples;
    int64_t groups_kept = 0, groups_seen = 0, zero_std_groups = 0, rollout_tokens = 0;
    double rollout_seconds = 0;
    if (tape) tape->Clear();
    for (int round = 0; round <= (opts.dynamic_sampling ? opts.max_resample_rounds : 0) && groups_kept < P; ++round) {
      const int64_t need = P - groups_kept;
      R1_ASSIGN_OR_RETURN(PromptSet set, MakePromptSet(*tokenizer, *task, Split::kTrain, prompt_cursor, need));
      prompt_cursor += static_cast<uint64_t>(need);
      const std::vector<Problem>& problems = set.problems;
      RolloutOptions ro = SamplingOptions(
          *tokenizer, G, opts.max_new_tokens, opts.temperature, opts.top_p,
          opts.seed * 1000003ull + static_cast<uint64_t>(step) * 7919ull + static_cast<uint64_t>(round) * 131ull);
      ro.max_batch = opts.max_batch;
      RolloutStats rs;
      FfnTape* round_tape = tape.get();
      if (round_tape && tape_budget > 0) {
        int64_t rows = round_tape->rows() + need * G * (opts.max_new_tokens - 1);
        for (const auto& prompt : set.prompts) rows += static_cast<int64_t>(prompt.size());
        const double bytes = static_cast<double>(rows) * static_cast<double>(round_tape->RowBytes());
        if (bytes > tape_budget) {
          round_tape = nullptr;
          if (!opts.quiet && !tape_over_budget_said)
            LogInfo(
                "grpo: recording the rollout's feed-forward activations would take %.1f GB; the update "
                "recomputes them instead",
                bytes / 1e9);
          tape_over_budget_said = true;
        }
      }
      R1_ASSIGN_OR_RETURN(std::vector<Completion> comps, SampleCompletions(policy, set.prompts, ro, &rs, round_tape));
      rollout_tokens += rs.tokens;
      rollout_seconds += rs.seconds;
      for (int64_t p = 0; p < need; ++p) {
        std::vector<Sample> grp;
        double mean = 0;
        for (int64_t i = 0; i < G; ++i) {
          const Completion& c = comps[static_cast<size_t>(p * G + i)];
          Sample s;
          s.group = groups_kept;
          s.prompt = set.prompts[p];
          s.ids = c.ids;
          s.old_logp = c.logprobs;
          s.stopped = c.stopped;
          s.tape_prompt_row = c.tape_prompt_row;
          s.tape_row = c.tape_row;
          const std::string text = CompletionText(*tokenizer, c.ids, c.stopped);
          const Reward r = ComputeReward(*task, problems[p], text, static_cast<int64_t>(c.ids.size()), rc);
          s.reward = r.total;
          s.correct = r.correct;
          s.well_formed = r.well_formed;
          mean += r.total / static_cast<double>(G);
          grp.push_back(std::move(s));
        }
        double var = 0;
        for (const Sample& s : grp) var += (s.reward - mean) * (s.reward - mean);
        const double sd = std::sqrt(var / static_cast<double>(G - 1));  // unbiased, as TRL
        ++groups_seen;
        const bool flat = sd < 1e-9;
        zero_std_groups += flat;
        if (flat && opts.dynamic_sampling && round < opts.max_resample_rounds) continue;
        for (Sample& s : grp) {
          s.advantage = opts.scale_rewards ? (s.reward - mean) / (sd + 1e-4) : s.reward - mean;
          s.group = groups_kept;
          samples.push_back(std::move(s));
        }
        ++groups_kept;
      }
    }
    const double t_roll = t_rollout.Seconds();
    // ---- reference log-probs (frozen policy), one forward per micro-batch
    Timer t_update;
    const kernels::ScopedGemmPrecision precision(opts.precision);
    std::vector<Sample*> all;
    for (Sample& s : samples) all.push_back(&s);
    int64_t completion_tokens = 0, max_len = 0;
    for (const Sample* s : all) {
      completion_tokens += static_cast<int64_t>(s->ids.size());
      max_len = std::max<int64_t>(max_len, static_cast<int64_t>(s->ids.size()));
    }
    // Micro-batches of at most --micro-batch completions. For a model whose products are too small
    // to split well across the threads (the rollout's rule: twice its matrices fit the last-level
    // cache), each thread instead runs whole micro-batches on its own (a lane), into its own
    // gradient buffers, added up in lane order after; the micro-batches then come in a multiple of
    // the threads, of equal size, each prompt's samples kept together and dealt so that the lanes
    // get about as many rows each (LaneBalancedMicroBatches). Either way the result depends only on the thread count.
    const int threads = std::max(1, omp_get_max_threads());
    int64_t n_micro = (static_cast<int64_t>(all.size()) + opts.micro_batch - 1) / opts.micro_batch;
    int64_t lanes = 1;
    if (threads > 1 && n_micro >= 1 && all.size() >= 2 && lanes_fit) {
      n_micro = std::min<int64_t>(static_cast<int64_t>(all.size()), (n_micro + threads - 1) / threads * threads);
      lanes = std::min<int64_t>(threads, n_micro);
    }
    std::vector<std::vector<Sample*>> micro;
    if (n_micro > 0) {
      const size_t per = (all.size() + static_cast<size_t>(n_micro) - 1) / static_cast<size_t>(n_micro);
      if (lanes > 1) {
        std::vector<SampleRun> runs;  // MakeBatch's rows: the prompt but its last token, then the completions
        for (size_t i = 0; i < all.size(); ++i) {
          if (i == 0 || !SamePrompt(*all[i - 1], *all[i]))
            runs.push_back({0, static_cast<int64_t>(all[i]->prompt.size()) - 1});
          ++runs.back().samples;
          runs.back().rows += static_cast<int64_t>(all[i]->ids.size());
        }
        for (const std::vector<int64_t>& idx :
             LaneBalancedMicroBatches(runs, n_micro, lanes, static_cast<int64_t>(per))) {
          micro.emplace_back();
          for (int64_t i : idx) micro.back().push_back(all[static_cast<size_t>(i)]);
        }
      }
      if (micro.empty()) {
        micro.resize(static_cast<size_t>(n_micro));
        for (size_t i = 0; i < all.size(); ++i) micro[i / per].push_back(all[i]);
      }
    }
    std::vector<MicroBatch> batches;  // the reference forward and every optimizer step use them
    for (const std::vector<Sample*>& rows : micro) batches.push_back(MakeBatch(rows));
    while (static_cast<int64_t>(grad_copies.size()) < lanes - 1) grad_copies.push_back(store.NewGradCopy());
    // fn(micro-batch index, lane) for every micro-batch, lane by lane.
    auto for_micro = [&](const std::function<void(size_t, int64_t)>& fn) {
      ParallelFor(lanes, lanes > 1, [&](int64_t lane) {
        for (int64_t i = lane; i < n_micro; i += lanes) fn(static_cast<size_t>(i), lane);
      });
    };
    if (ref) {
      for_micro([&](size_t mi, int64_t) {
        const std::vector<Sample*>& rows = micro[mi];
        if (rows.empty()) return;
        const MicroBatch& mb = batches[mi];
        LossOptions lo;
        lo.temperature = opts.temperature;
        lo.token_objective = [&](const float* logp, float*) {
          for (size_t r = 0; r < rows.size(); ++r) {
            rows[r]->ref_logp.resize(rows[r]->ids.size());
            for (size_t j = 0; j < rows[r]->ids.size(); ++j)
              rows[r]->ref_logp[j] = logp[mb.first[r] + static_cast<int64_t>(j)];
          }
          return 0.0;
        };
        TrainForwardBackward(config, *ref_weights, nullptr, mb.batch, lo);
      });
    }
    // ---- μ optimizer steps on the clipped objective
    const double n_seqs = static_cast<double>(all.size());
    double kl_sum = 0, clipped = 0, entropy_sum = 0, loss_sum = 0;
    int64_t counted = 0;
    struct MicroTotals {
      double kl = 0, clipped = 0, entropy = 0, loss = 0;
      std::vector<std::vector<int64_t>> loads;
    };
    for (int it = 0; it < opts.mu && !all.empty(); ++it) {  // each optimizer step leaves the gradients zero
      std::vector<MicroTotals> totals(static_cast<size_t>(n_micro));
      for_micro([&](size_t mi, int64_t lane) {
        const std::vector<Sample*>& rows = micro[mi];
        if (rows.empty()) return;
        MicroTotals& mt = totals[mi];
        const MicroBatch& mb = batches[mi];
        LossOptions lo;
        lo.temperature = opts.temperature;
        lo.balance_alpha = opts.balance_alpha;
        if (it == 0 && tape && !mb.tape_rows.empty()) {  // the weights the rollout sampled with
          lo.tape = tape.get();
          lo.tape_rows = mb.tape_rows.data();
        }
        lo.token_objective = [&](const float* logp, float* coef) {
          double loss = 0;
          for (size_t r = 0; r < rows.size(); ++r) {
            const Sample& s = *rows[r];
            const int64_t n = static_cast<int64_t>(s.ids.size());
            // Per-token weight of the aggregation.
            double w = 0;
            switch (opts.loss) {
              case GrpoLoss::kTokenMean: w = 1.0 / static_cast<double>(completion_tokens); break;
              case GrpoLoss::kSeqMeanTokenMean: w = 1.0 / (n_seqs * static_cast<double>(n)); break;
              case GrpoLoss::kDrGrpo: w = 1.0 / (n_seqs * static_cast<double>(opts.max_new_tokens)); break;
            }
            for (int64_t j = 0; j < n; ++j) {
              const int64_t i = mb.first[r] + j;
              const TokenTerms tt = GrpoTokenTerms(logp[i], s.old_logp[j], ref != nullptr,
                                                   ref ? s.ref_logp[j] : 0.0, s.advantage, eps_low, eps_high,
                                                   opts.beta);
              const double c = tt.coef, tok_loss = tt.loss;
              mt.kl += tt.kl;
              mt.clipped += tt.clipped;
              loss += w * tok_loss;
              coef[i] = static_cast<float>(w * c);
            }
          }
          return loss;
        };
        ModelWeights* g = lane == 0 ? grads.get() : grad_copies[static_cast<size_t>(lane - 1)].views.get();
        const LossReport rep = TrainForwardBackward(config, update_weights, g, mb.batch, lo);
        mt.entropy = rep.entropy * static_cast<double>(rep.main_tokens);
        mt.loss = rep.main;
        mt.loads = rep.expert_load;
      });
      for (int64_t l = 1; l < lanes; ++l) store.AddGrads(grad_copies[static_cast<size_t>(l - 1)]);
      std::vector<std::vector<int64_t>> loads;
      double kl_it = 0, clipped_it = 0, ent_it = 0, loss_it = 0;
      for (const MicroTotals& mt : totals) {
        kl_it += mt.kl;
        clipped_it += mt.clipped;
        ent_it += mt.entropy;
        loss_it += mt.loss;
        if (loads.empty()) loads = mt.loads;
        else
          for (size_t l = 0; l < loads.size() && l < mt.loads.size(); ++l)
            for (size_t e = 0; e < loads[l].size(); ++e) loads[l][e] += mt.loads[l][e];
      }
      opt.Step(opts.lr);
      // The next optimizer step's forward, or the next rollout, multiplies by the copy.
      if (packed) packed->Refresh();
      train::UpdateCorrectionBias(&store, loads, opts.bias_update_speed);
      if (it == 0) {  // report the first pass (ratios are 1 there up to kernel rounding)
        kl_sum = kl_it;
        clipped = clipped_it;
        entropy_sum = ent_it;
        loss_sum = loss_it;
        counted = completion_tokens;
      }
    }
    if (ref && opts.ref_refresh > 0 && (step + 1) % opts.ref_refresh == 0)
      for (size_t i = 0; i < store.params().size(); ++i) ref->params()[i].value = store.params()[i].value;
    const double t_upd = t_update.Seconds();
    // ---- metrics
    double rmean = 0, rsq = 0, acc = 0, fmt = 0, len = 0;
    for (const Sample* s : all) {
      rmean += s->reward;
      rsq += s->reward * s->reward;
      acc += s->correct;
      fmt += s->well_formed;
      len += static_cast<double>(s->ids.size());
    }
    const double ns = std::max(1.0, n_seqs);
    rmean /= ns;
    const double rstd = std::sqrt(std::max(0.0, rsq / ns - rmean * rmean));
    const double tok = std::max<double>(1, static_cast<double>(counted));
    json m = {{"stage", "grpo"},
              {"step", step + 1},
              {"reward_mean", rmean},
              {"reward_std", rstd},
              {"accuracy", acc / ns},
              {"format_rate", fmt / ns},
              {"completion_length_mean", len / ns},
              {"completion_length_max", max_len},
              {"kl", ref ? kl_sum / tok : 0.0},
              {"clip_fraction", clipped / tok},
              {"entropy", entropy_sum / tok},
              {"loss", loss_sum},
              {"zero_std_groups", groups_seen ? static_cast<double>(zero_std_groups) / static_cast<double>(groups_seen) : 0.0},
              {"groups", groups_kept},
              {"rollout_tokens_per_s", static_cast<double>(rollout_tokens) / std::max(rollout_seconds, 1e-9)},
              {"update_tokens_per_s", static_cast<double>(completion_tokens * opts.mu) / std::max(t_upd, 1e-9)},
              {"rollout_seconds", t_roll},
              {"update_seconds", t_upd},
              {"lr", opts.lr}};
    const std::string line = m.dump();
    if (metrics) {
      std::fprintf(metrics.get(), "%s\n", line.c_str());
      std::fflush(metrics.get());
    }
    if (on_step) on_step(line);
    if (!opts.quiet) {
      const double elapsed = total.Seconds();
      LogInfo("grpo step %lld/%lld  reward %.3f±%.3f  acc %.3f  format %.2f  len %.0f/%lld  kl %.4f  clip %.3f  "
              "rollout %.1fs (%.0f tok/s)  update %.1fs  ETA %.0fs",
              static_cast<long long>(step + 1), static_cast<long long>(opts.steps), rmean, rstd, acc / ns, fmt / ns,
              len / ns, static_cast<long long>(max_len), ref ? kl_sum / tok : 0.0, clipped / tok, t_roll,
              static_cast<double>(rollout_tokens) / std::max(rollout_seconds, 1e-9), t_upd,
              elapsed / static_cast<double>(step + 1) * static_cast<double>(opts.steps - step - 1));
    }
    summary.final_reward = rmean;
    summary.final_accuracy = acc / ns;
    state.step = step + 1;
    if (opts.save_every > 0 && state.step % opts.save_every == 0 && state.step < opts.steps)
      R1_RETURN_IF_ERROR(train::SaveCheckpoint(opts.out, store, &opt, state, source));
    if (opts.max_seconds > 0 && total.Seconds() >= opts.max_seconds && state.step < opts.steps) {
      if (!opts.quiet)
        LogInfo("grpo: time budget of %.1f s reached after step %lld", opts.max_seconds, static_cast<long long>(state.step));
      break;
    }
  }
  R1_RETURN_IF_ERROR(train::SaveCheckpoint(opts.out, store, &opt, state, source));
  summary.steps = state.step;
  summary.seconds = total.Seconds();
  return summary;
}

}  // namespace r1::rl
