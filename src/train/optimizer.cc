#include "train/optimizer.h"

#include <cmath>

#include "kernels/adamw.h"

namespace r1::train {

AdamW::AdamW(ParameterStore* store, const AdamWConfig& cfg) : store_(store), cfg_(cfg) {
  for (const Parameter& p : store_->params()) {
    m_.emplace_back(p.trainable ? p.value.size() : 0, 0.0f);
    v_.emplace_back(p.trainable ? p.value.size() : 0, 0.0f);
  }
}

double AdamW::GradNorm() const {
  std::vector<std::pair<const float*, int64_t>> grads;
  for (const Parameter& p : store_->params()) grads.emplace_back(p.grad.data(), static_cast<int64_t>(p.grad.size()));
  return std::sqrt(kernels::SumOfSquaresMany(grads));
}

double AdamW::Step(float lr, double norm) {
  ++step_;
  const float clip_scale =
      cfg_.clip > 0.0f && norm > cfg_.clip ? static_cast<float>(cfg_.clip / norm) : 1.0f;
  auto& params = store_->params();
  std::vector<kernels::AdamWTensor> tensors;
  for (size_t i = 0; i < params.size(); ++i) {
    Parameter& p = params[i];
    if (!p.trainable) continue;
    const kernels::AdamWParams a{lr,    cfg_.beta1, cfg_.beta2, cfg_.eps, p.decay ? cfg_.weight_decay : 0.0f,
                                 step_, clip_scale};
    tensors.push_back(
        {p.value.data(), p.grad.data(), m_[i].data(), v_[i].data(), static_cast<int64_t>(p.value.size()), a});
  }
  kernels::AdamWStepMany(tensors);
  return norm;
}

std::vector<std::string> MoeBiasNames(const ModelConfig& c, bool with_mtp) {
  std::vector<std::string> names;
  auto name = [](int64_t l) { return "model.layers." + std::to_string(l) + ".mlp.gate.e_score_correction_bias"; };
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    if (c.IsMoeLayer(l)) names.push_back(name(l));
  if (with_mtp && c.n_routed_experts > 0)
    for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) names.push_back(name(c.num_hidden_layers + k));
  return names;
}

void UpdateCorrectionBias(ParameterStore* store, const std::vector<std::vector<int64_t>>& loads, double gamma) {
  if (gamma == 0.0) return;
  // Main MoE layers come first; the MTP blocks' loads are absent when the MTP module did not run.
  const std::vector<std::string> names = MoeBiasNames(store->config(), store->has_mtp());
  R1_CHECK_LE(loads.size(), names.size());
  for (size_t l = 0; l < loads.size(); ++l) {
    Parameter* p = store->Find(names[l]);
    R1_CHECK(p != nullptr) << names[l];
    double total = 0;
    for (int64_t x : loads[l]) total += static_cast<double>(x);
    const double mean = total / static_cast<double>(loads[l].size());
    for (size_t e = 0; e < loads[l].size(); ++e) {
      const double d = mean - static_cast<double>(loads[l][e]);
      const double sign = d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0);
      p->value[e] = static_cast<float>(static_cast<double>(p->value[e]) + gamma * sign);
    }
  }
}

float LearningRate(LrSchedule schedule, float lr, float min_lr, int64_t warmup, int64_t total_steps, int64_t step) {
  if (warmup > 0 && step < warmup) return lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
  if (schedule == LrSchedule::kConstant) return lr;
  const int64_t decay_steps = std::max<int64_t>(1, total_steps - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(decay_steps));
  return static_cast<float>(min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress)));
}

}  // namespace r1::train
