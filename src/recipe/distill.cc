#include "recipe/distill.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/file.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "model/deepseek_v3.h"
#include "model/parameters.h"
#include "model/train_graph.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/optimizer.h"

namespace r1::recipe {
namespace {

using json = nlohmann::json;

// teacher_probs (B·T, V): softmax of the teacher's logits at every position with a target. Each
// document of a row runs through the teacher on its own, at positions 0.., as the training graph
// sees it (DocumentPositions).
void TeacherProbs(const DeepSeekV3& teacher, const TrainBatch& b, std::vector<float>* probs) {
  const int64_t V = teacher.config().vocab_size;
  probs->assign(static_cast<size_t>(b.B * b.T * V), 0.0f);
  std::vector<float> logits;
  for (int64_t r = 0; r < b.B; ++r) {
    for (int64_t s = 0; s < b.T;) {
      int64_t e = s + 1;
      while (e < b.T && b.doc[r * b.T + e] == b.doc[r * b.T + s]) ++e;
      bool trained = false;
      for (int64_t t = s; t < e; ++t) trained |= b.targets[r * b.T + t] >= 0;
      if (trained && b.doc[r * b.T + s] >= 0) {
        logits.assign(static_cast<size_t>((e - s) * V), 0.0f);
        teacher.Forward(b.ids.data() + r * b.T + s, e - s, logits.data());
        for (int64_t t = s; t < e; ++t) {
          if (b.targets[r * b.T + t] < 0) continue;
          const float* z = logits.data() + (t - s) * V;
          float* q = probs->data() + (r * b.T + t) * V;
          float m = z[0];
          for (int64_t v = 1; v < V; ++v) m = std::max(m, z[v]);
          double sum = 0;
          for (int64_t v = 0; v < V; ++v) sum += std::exp(static_cast<double>(z[v] - m));
          for (int64_t v = 0; v < V; ++v) q[v] = static_cast<float>(std::exp(static_cast<double>(z[v] - m)) / sum);
        }
      }
      s = e;
    }
  }
}

}  // namespace

Result<DistillSummary> Distill(const DistillOptions& opts) {
  const TrainConfig& tc = opts.train;
  R1_ASSIGN_OR_RETURN(auto ck, io::Checkpoint::Open(opts.init));
  R1_ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromJson(ck->config_text(), opts.init + "/config.json"));
  R1_ASSIGN_OR_RETURN(ParameterStore store, ParameterStore::FromCheckpoint(config, *ck, /*add_missing_mtp=*/true, opts.seed));
  ck.reset();
  if (tc.seq > config.max_position_embeddings)
    return InvalidArgument(StrFormat("distill seq %lld exceeds the student's max_position_embeddings %lld",
                                     static_cast<long long>(tc.seq), static_cast<long long>(config.max_position_embeddings)));
  R1_ASSIGN_OR_RETURN(auto tokenizer, tok::Tokenizer::Load(opts.init));
  R1_ASSIGN_OR_RETURN(train::Dataset data, train::Dataset::Load(opts.data, tc.seq, tokenizer.get(), config.vocab_size));
  std::unique_ptr<DeepSeekV3> teacher;
  if (opts.logit_weight > 0) {
    R1_ASSIGN_OR_RETURN(teacher, DeepSeekV3::Load(opts.teacher));
    if (teacher->config().vocab_size != config.vocab_size)
      return InvalidArgument(StrFormat("logit distillation needs one vocabulary: teacher %lld, student %lld tokens",
                                       static_cast<long long>(teacher->config().vocab_size),
                                       static_cast<long long>(config.vocab_size)));
  }
  LogInfo("distill: %lld parameters, %lld chats (%lld windows of %lld)%s", static_cast<long long>(store.NumTrainable()),
          static_cast<long long>(data.num_documents()), static_cast<long long>(data.num_windows()),
          static_cast<long long>(tc.seq), teacher ? StrFormat(", logit KL weight %g", opts.logit_weight).c_str() : "");
  std::unique_ptr<FILE, int (*)(FILE*)> metrics(nullptr, &std::fclose);
  if (!opts.metrics.empty()) {
    metrics.reset(std::fopen(opts.metrics.c_str(), "w"));
    if (!metrics) return IoError(opts.metrics + ": cannot open for writing");
  }
  train::AdamW opt(&store, train::AdamWConfig{0.9f, 0.95f, 1e-8f, tc.weight_decay, tc.clip});
  train::TrainerState state;
  state.stage = "sft";
  state.seed = opts.seed;
  auto weights = store.Weights();
  auto grads = store.Grads();
  LossOptions lo;
  lo.mtp_weight = tc.mtp_weight >= 0 ? tc.mtp_weight : (store.has_mtp() ? 0.3 : 0.0);
  lo.balance_alpha = tc.balance_alpha;
  lo.distill_weight = teacher ? opts.logit_weight : 0.0;
  const train::LrSchedule schedule = tc.schedule == "cosine" ? train::LrSchedule::kCosine : train::LrSchedule::kConstant;
  DistillSummary sum;
  Timer total, since_print;
  std::vector<float> probs;
  store.ZeroGrad();  // from here on each optimizer step leaves them zero
  for (int64_t step = 0; step < tc.steps; ++step) {
    double loss = 0, ce = 0, kl = 0;
    std::vector<std::vector<int64_t>> loads;
    for (int64_t k = 0; k < tc.grad_accum; ++k) {
      TrainBatch batch;
      data.Fill(state.cursor, tc.batch, /*shuffle=*/true, opts.seed, &batch);
      state.cursor += tc.batch;
      if (teacher) {
        TeacherProbs(*teacher, batch, &probs);
        lo.teacher_probs = probs.data();
      }
      const LossReport rep = TrainForwardBackward(config, *weights, grads.get(), batch, lo, 1.0f / static_cast<float>(tc.grad_accum));
      const double w = 1.0 / static_cast<double>(tc.grad_accum);
      loss += rep.loss * w;
      ce += rep.main * w;
      kl += rep.distill * w;
      if (loads.empty()) loads = rep.expert_load;
      else
        for (size_t l = 0; l < loads.size(); ++l)
          for (size_t e = 0; e < loads[l].size(); ++e) loads[l][e] += rep.expert_load[l][e];
    }
    const float lr = train::LearningRate(schedule, tc.lr, tc.min_lr, tc.warmup, tc.steps, step);
    const double grad_norm = opt.GradNorm();
    if (!std::isfinite(loss) || !std::isfinite(grad_norm))
      return Internal(StrFormat("distill step %lld: non-finite loss or gradient (loss %g) — lower distill.train.lr",
                                static_cast<long long>(step + 1), loss));
    opt.Step(lr, grad_norm);
    train::UpdateCorrectionBias(&store, loads, tc.bias_update_speed);
    state.step = step + 1;
    sum.final_loss = loss;
    sum.final_ce = ce;
    sum.final_kl = kl;
    const json m = {{"stage", "distill"}, {"step", state.step}, {"loss", loss},          {"loss_main", ce},
                    {"kl", kl},           {"lr", lr},           {"grad_norm", grad_norm}, {"seconds", total.Seconds()}};
    if (metrics) {
      std::fprintf(metrics.get(), "%s\n", m.dump().c_str());
      std::fflush(metrics.get());
    }
    if (since_print.Seconds() >= 1.0 || state.step == 1 || state.step == tc.steps) {
      since_print.Reset();
      const double el = total.Seconds();
      LogInfo("distill step %lld/%lld  loss %.4f (ce %.4f%s)  lr %.2e  grad %.3f  ETA %.0fs",
              static_cast<long long>(state.step), static_cast<long long>(tc.steps), loss, ce,
              teacher ? StrFormat(", kl %.4f", kl).c_str() : "", lr, grad_norm,
              el / static_cast<double>(state.step) * static_cast<double>(tc.steps - state.step));
    }
  }
  R1_RETURN_IF_ERROR(train::SaveCheckpoint(opts.out, store, &opt, state, opts.init));
  sum.steps = state.step;
  sum.seconds = total.Seconds();
  return sum;
}

}  // namespace r1::recipe
