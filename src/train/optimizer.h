// AdamW over a ParameterStore, gradient clipping by global norm, learning-rate schedules, and
// DeepSeek-V3's auxiliary-loss-free balancing of the router correction biases.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/parameters.h"

namespace r1::train {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled; matrices and embeddings only
  float clip = 0.0f;          // global-norm clip; 0 = off
};

class AdamW {
 public:
  AdamW(ParameterStore* store, const AdamWConfig& cfg);

  // Global L2 norm of all trainable gradients.
  double GradNorm() const;
  // Clips (when configured), then updates every trainable parameter with learning rate lr, and
  // leaves every gradient zero: a training loop zeroes them once before its first step (and
  // after a step it skips), not before every step. Returns the gradient norm before clipping.
  double Step(float lr) { return Step(lr, GradNorm()); }
  // The same with GradNorm() already computed by the caller (it reads every gradient once).
  double Step(float lr, double grad_norm);
  int64_t step() const { return step_; }

  // Moments and step count, for checkpoints that resume bit-identically.
  std::vector<std::vector<float>>& m() { return m_; }
  std::vector<std::vector<float>>& v() { return v_; }
  void set_step(int64_t s) { step_ = s; }

 private:
  ParameterStore* store_;
  AdamWConfig cfg_;
  std::vector<std::vector<float>> m_, v_;  // per parameter (empty for buffers)
  int64_t step_ = 0;
};

// After an optimizer step, per MoE layer: bias_i += γ·sign(mean_load − load_i) (spec §5.4).
// `loads` are in the order of LossReport::expert_load (main MoE layers, then MTP blocks when the
// MTP module ran).
void UpdateCorrectionBias(ParameterStore* store, const std::vector<std::vector<int64_t>>& loads, double gamma);

// Names of the correction biases in that same order.
std::vector<std::string> MoeBiasNames(const ModelConfig& c, bool with_mtp);

enum class LrSchedule { kConstant, kCosine };

// Linear warmup over `warmup` steps, then constant or cosine decay to min_lr at total_steps.
// step counts from 0.
float LearningRate(LrSchedule schedule, float lr, float min_lr, int64_t warmup, int64_t total_steps, int64_t step);

}  // namespace r1::train
