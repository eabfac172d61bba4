#include "train/trainer.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/log.h"
#include "core/threads.h"
#include "io/safetensors.h"
#include "model/parameters.h"
#include "model/train_graph.h"
#include "train/checkpoint.h"
#include "train/data.h"

namespace r1::train {
namespace {

using json = nlohmann::json;

std::string FormatDuration(double s) {
  if (s < 60) return StrFormat("%.0fs", s);
  if (s < 3600) return StrFormat("%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return StrFormat("%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
}

Status Validate(const TrainOptions& o) {
  const int sources = !o.config_path.empty() + !o.init_dir.empty();
  if (o.resume_dir.empty() && sources != 1) return UsageError("give exactly one of --config FILE or --init DIR (or --resume DIR)");
  if (o.data.empty()) return UsageError("--data is required");
  if (o.out.empty()) return UsageError("--out is required");
  if (o.steps < 1) return UsageError("--steps must be >= 1");
  if (o.batch < 1) return UsageError("--batch must be >= 1");
  if (o.seq < 1) return UsageError("--seq must be >= 1");
  if (o.grad_accum < 1) return UsageError("--grad-accum must be >= 1");
  if (!(o.lr > 0)) return UsageError("--lr must be positive");
  if (o.min_lr < 0 || o.min_lr > o.lr) return UsageError("--min-lr must be in [0, --lr]");
  if (o.warmup < 0) return UsageError("--warmup must be >= 0");
  if (o.weight_decay < 0) return UsageError("--weight-decay must be >= 0");
  if (o.clip < 0) return UsageError("--clip must be >= 0 (0 = off)");
  if (o.save_every < 0) return UsageError("--save-every must be >= 0");
  if (o.balance_alpha < 0 || o.bias_update_speed < 0) return UsageError("--balance-alpha and --bias-update-speed must be >= 0");
  return Status::Ok();
}

}  // namespace

Result<TrainSummary> Train(const TrainOptions& opts, const std::function<void(const std::string&)>& on_step) {
  R1_RETURN_IF_ERROR(Validate(opts));
  // ---- model
  const std::string source = !opts.resume_dir.empty() ? opts.resume_dir : opts.init_dir;
  ModelConfig config;
  ParameterStore store;
  std::unique_ptr<io::Checkpoint> ck;
  if (!source.empty()) {
    R1_ASSIGN_OR_RETURN(ck, io::Checkpoint::Open(source));
    R1_ASSIGN_OR_RETURN(config, ModelConfig::FromJson(ck->config_text(), source + "/config.json"));
    R1_ASSIGN_OR_RETURN(store, ParameterStore::FromCheckpoint(config, *ck, /*add_missing_mtp=*/true, opts.seed));
    ck.reset();
  } else {
    R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(opts.config_path));
    R1_ASSIGN_OR_RETURN(config, ModelConfig::FromJson(text, opts.config_path));
    store = ParameterStore::Random(config, opts.seed, opts.init_std);
  }
  if (opts.seq > config.max_position_embeddings)
    return UsageError("--seq " + std::to_string(opts.seq) + " exceeds the model's max_position_embeddings " +
                      std::to_string(config.max_position_embeddings));
  const double mtp_weight = opts.mtp_weight >= 0 ? opts.mtp_weight : (store.has_mtp() ? 0.3 : 0.0);

  // ---- tokenizer and data
  std::string tok_path = opts.tokenizer;
  if (tok_path.empty() && !source.empty() && FileExists(source + "/tokenizer.json")) tok_path = source;
  std::unique_ptr<tok::Tokenizer> tokenizer;
  if (!tok_path.empty()) {
    R1_ASSIGN_OR_RETURN(tokenizer, tok::Tokenizer::Load(tok_path));
  }
  R1_ASSIGN_OR_RETURN(Dataset data, Dataset::Load(opts.data, opts.seq, tokenizer.get(), config.vocab_size));
  if (!opts.quiet)
    LogInfo("%s: %lld parameters, data %s: %lld tokens in %lld windows of %lld%s", opts.stage.c_str(),
            static_cast<long long>(store.NumTrainable()), opts.data.c_str(), static_cast<long long>(data.num_tokens()),
            static_cast<long long>(data.num_windows()), static_cast<long long>(opts.seq),
            data.truncated() ? StrFormat(" (%lld chats cut to fit)", static_cast<long long>(data.truncated())).c_str() : "");

  // ---- optimizer and state
  AdamW opt(&store, AdamWConfig{0.9f, 0.95f, 1e-8f, opts.weight_decay, opts.clip});
  TrainerState state;
  state.seed = opts.seed;
  state.stage = opts.stage;
  const bool bf16 = opts.precision == kernels::GemmPrecision::kBf16;
  const std::string precision_name = bf16 ? "bf16" : "f32";
  state.precision = precision_name;
  Rng rng(opts.seed);
  state.rng = rng.GetState();
  if (!opts.resume_dir.empty()) {
    R1_RETURN_IF_ERROR(LoadTrainingState(opts.resume_dir, store, &opt, &state));
    rng.SetState(state.rng);
    if (!opts.quiet) LogInfo("resuming %s at step %lld", opts.resume_dir.c_str(), static_cast<long long>(state.step));
    if (state.precision != precision_name)
      LogInfo(
          "note: %s was trained with --precision %s and continues with --precision %s; the losses will not be "
          "those of an uninterrupted run",
          opts.resume_dir.c_str(), state.precision.c_str(), precision_name.c_str());
    state.precision = precision_name;
    if (state.step >= opts.steps) LogInfo("the checkpoint is already at step %lld of %lld", static_cast<long long>(state.step), static_cast<long long>(opts.steps));
  }
  std::unique_ptr<FILE, int (*)(FILE*)> metrics(nullptr, &std::fclose);
  if (!opts.metrics.empty()) {
    metrics.reset(std::fopen(opts.metrics.c_str(), "a"));
    if (!metrics) return IoError(opts.metrics + ": cannot open for appending");
  }

  auto weights = store.Weights();
  auto grads = store.Grads();
  const kernels::ScopedGemmPrecision precision(opts.precision);
  if (bf16 && !opts.quiet)
    LogInfo("products in bf16 with f32 sums (%s)", kernels::Bf16EngineName(kernels::CurrentBf16Engine()));
  LossOptions loss_opts;
  loss_opts.mtp_weight = mtp_weight;
  loss_opts.balance_alpha = opts.balance_alpha;
  TrainSummary sum;
  Timer total, since_print;
  int64_t tokens_run = 0;
  int nonfinite_run = 0;
  const int64_t first_step = state.step;
  double last_loss = 0;
  store.ZeroGrad();  // from here on each optimizer step leaves them zero
  for (int64_t step = state.step; step < opts.steps; ++step) {
    Timer step_timer;
    LossReport acc;
    for (int64_t k = 0; k < opts.grad_accum; ++k) {
      TrainBatch batch;
      data.Fill(state.cursor, opts.batch, opts.shuffle, opts.seed, &batch);
      state.cursor += opts.batch;
      const LossReport rep = TrainForwardBackward(config, *weights, grads.get(), batch, loss_opts,
                                                  1.0f / static_cast<float>(opts.grad_accum));
      const double w = 1.0 / static_cast<double>(opts.grad_accum);
      acc.loss += rep.loss * w;
      acc.main += rep.main * w;
      acc.mtp += rep.mtp * w;
      acc.balance += rep.balance * w;
      acc.main_tokens += rep.main_tokens;
      if (acc.expert_load.empty()) acc.expert_load = rep.expert_load;
      else
        for (size_t l = 0; l < rep.expert_load.size(); ++l)
          for (size_t e = 0; e < rep.expert_load[l].size(); ++e) acc.expert_load[l][e] += rep.expert_load[l][e];
    }
    const int64_t step_tokens = opts.batch * opts.grad_accum * opts.seq;
    state.tokens += step_tokens;
    tokens_run += step_tokens;
    const float lr = LearningRate(opts.schedule, opts.lr, opts.min_lr, opts.warmup, opts.steps, step);
    double grad_norm = opt.GradNorm();
    const bool finite = std::isfinite(acc.loss) && std::isfinite(grad_norm);
    if (finite) {
      nonfinite_run = 0;
      opt.Step(lr, grad_norm);
      UpdateCorrectionBias(&store, acc.expert_load, opts.bias_update_speed);
      last_loss = acc.loss;
    } else {
      store.ZeroGrad();
      ++sum.skipped;
      ++nonfinite_run;
      LogInfo("step %lld: non-finite loss or gradient (loss %g, grad norm %g) — step skipped",
              static_cast<long long>(step + 1), acc.loss, grad_norm);
      if (nonfinite_run >= opts.max_nonfinite)
        return Internal(StrFormat("%d non-finite steps in a row (last at step %lld); stopping — lower --lr or check the data",
                                  nonfinite_run, static_cast<long long>(step + 1)));
    }
    state.step = step + 1;
    // Expert imbalance: the largest max/mean load over MoE layers.
    double imbalance = 0;
    for (const auto& load : acc.expert_load) {
      double mx = 0, mean = 0;
      for (int64_t x : load) {
        mx = std::max(mx, static_cast<double>(x));
        mean += static_cast<double>(x);
      }
      mean /= static_cast<double>(load.size());
      if (mean > 0) imbalance = std::max(imbalance, mx / mean);
    }
    const double elapsed = total.Seconds();
    const double tps = static_cast<double>(tokens_run) / std::max(elapsed, 1e-9);
    const double eta = elapsed / static_cast<double>(state.step - first_step) * static_cast<double>(opts.steps - state.step);
    json m = {{"stage", opts.stage},        {"step", state.step},        {"loss", acc.loss},
              {"loss_main", acc.main},      {"loss_mtp", acc.mtp},       {"loss_balance", acc.balance},
              {"lr", lr},                   {"grad_norm", grad_norm},    {"tokens", state.tokens},
              {"tokens_per_s", tps},        {"step_seconds", step_timer.Seconds()},
              {"expert_imbalance", imbalance}, {"skipped", !finite}};
    const std::string line = m.dump();
    if (metrics) {
      std::fprintf(metrics.get(), "%s\n", line.c_str());
      std::fflush(metrics.get());
    }
    if (on_step) on_step(line);
    if (!opts.quiet && (since_print.Seconds() >= 1.0 || state.step == first_step + 1 || state.step == opts.steps)) {
      since_print.Reset();
      LogInfo("%s step %lld/%lld  loss %.4f (main %.4f%s)  lr %.2e  grad %.3f  %s  %.0f tok/s  ETA %s",
              opts.stage.c_str(), static_cast<long long>(state.step), static_cast<long long>(opts.steps), acc.loss,
              acc.main, mtp_weight > 0 ? StrFormat(", mtp %.4f", acc.mtp).c_str() : "", lr, grad_norm,
              acc.expert_load.empty() ? "" : StrFormat("experts max/mean %.2f", imbalance).c_str(), tps,
              FormatDuration(eta).c_str());
    }
    if (opts.save_every > 0 && state.step % opts.save_every == 0 && state.step < opts.steps) {
      state.rng = rng.GetState();
      R1_RETURN_IF_ERROR(SaveCheckpoint(opts.out, store, &opt, state, tok_path));
    }
  }
  state.rng = rng.GetState();
  R1_RETURN_IF_ERROR(SaveCheckpoint(opts.out, store, &opt, state, tok_path));
  sum.steps = state.step;
  sum.final_loss = last_loss;
  sum.seconds = total.Seconds();
  sum.tokens_per_second = static_cast<double>(tokens_run) / std::max(sum.seconds, 1e-9);
  if (!opts.quiet)
    LogInfo("%s done: %lld steps, final loss %.4f, %.1f s, %.0f tokens/s; checkpoint in %s", opts.stage.c_str(),
            static_cast<long long>(sum.steps), sum.final_loss, sum.seconds, sum.tokens_per_second, opts.out.c_str());
  return sum;
}

}  // namespace r1::train
