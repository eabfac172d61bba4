// GRPO (DeepSeekMath / DeepSeek-R1; spec r1-training.md §1) on the live engine: the rollouts are
// sampled by the inference path on the very weights being trained, in the same process.
//
// One step: P prompts from the task's training split → G completions each (latent-cache batched
// decode, recording log π_old per token) → rule-based rewards → advantages normalized within each
// group (mean/std, or mean only for Dr. GRPO) → μ optimizer steps on the clipped-ratio objective
//   J_t = min(ρ_t·A, clip(ρ_t, 1−ε_low, 1+ε_high)·A),  ρ_t = π_θ(o_t)/π_old(o_t)
// minus β·k3-KL to a frozen reference, D_t = π_ref/π_θ − log(π_ref/π_θ) − 1, aggregated by
// token-mean, seq-mean-token-mean or Dr. GRPO's constant normalizer (G·P·max_new_tokens).
// The router's correction biases keep their balancing updates during RL.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "kernels/gemm.h"

namespace r1::rl {

enum class GrpoLoss { kTokenMean, kSeqMeanTokenMean, kDrGrpo };

struct GrpoOptions {
  std::string init, out, metrics;
  std::string task, task_args;
  std::string reward;                 // ParseRewardConfig spec; "" = defaults
  int64_t steps = 0;
  double max_seconds = 0;             // > 0: also stop after the step that crosses this wall-clock budget
  int64_t prompts_per_step = 8;       // P
  int64_t group = 8;                  // G
  int64_t max_new_tokens = 128;
  float temperature = 1.0f, top_p = 1.0f;
  float lr = 1e-5f;
  double beta = 0.0;                  // KL weight; 0 skips the reference model
  double epsilon = 0.2, epsilon_high = -1;  // < 0: = epsilon
  GrpoLoss loss = GrpoLoss::kTokenMean;
  bool scale_rewards = true;          // divide by the group std (false for Dr. GRPO)
  int mu = 1;                         // optimizer steps per rollout batch
  int64_t ref_refresh = 0;            // copy the policy into the reference every N steps; 0 never
  bool dynamic_sampling = false;      // drop all-equal groups and sample more prompts
  int max_resample_rounds = 4;
  uint64_t seed = 0;
  int64_t save_every = 0;
  float weight_decay = 0.0f, clip = 1.0f;
  double bias_update_speed = 0.001, balance_alpha = 0.0001;
  int64_t micro_batch = 16;           // completions per forward/backward
  int64_t max_batch = 64;             // sequences per rollout decode step
  // The update's products (as train::TrainOptions::precision). With bf16 the rollout samples from
  // a bf16 copy of the policy's matrices (PackedBf16Weights), refreshed after each optimizer step,
  // which the update's forward (and, transposed, its backward) multiplies by too.
  kernels::GemmPrecision precision = kernels::GemmPrecision::kF32;
  // The first optimizer step after each rollout takes its forward's feed-forward activations from
  // what the rollout recorded (FfnTape) instead of recomputing them, unless the tape would take
  // more than a quarter of the machine's memory.
  bool rollout_tape = true;
  bool quiet = false;
};

struct GrpoSummary {
  int64_t steps = 0;
  double seconds = 0, final_reward = 0, final_accuracy = 0;
};

// One completion token's share of the GRPO loss, L = −min(ρA, clip(ρ)A) + β·D (D the k3 KL;
// has_ref false means β = 0), and coef = ∂L/∂log π_θ(o_t).
struct TokenTerms {
  double loss = 0, coef = 0, kl = 0;
  bool clipped = false;  // the clipped branch of the min is active (no ratio gradient)
};
TokenTerms GrpoTokenTerms(double logp, double old_logp, bool has_ref, double ref_logp, double advantage,
                          double eps_low, double eps_high, double beta);

// The micro-batches of an update whose threads each run whole micro-batches (lanes): n_micro of
// at most `per` samples, micro-batch i on lane i % lanes (n_micro a multiple of lanes). A lane's
// time follows its rows, so the runs of samples that share a prompt (`runs`, in sample order: how
// many samples, how many rows they put in a micro-batch) are dealt to the lanes largest first,
// each whole to the lane with the fewest rows so far that has room, and each lane's runs, in
// sample order, fill its micro-batches. Returns each micro-batch's sample indices; empty when a
// run, its turn come, fits no lane (the caller then splits the samples in order).
struct SampleRun {
  int64_t samples = 0, rows = 0;
};
std::vector<std::vector<int64_t>> LaneBalancedMicroBatches(std::span<const SampleRun> runs, int64_t n_micro,
                                                           int64_t lanes, int64_t per);

// `on_step` receives each step's metrics JSON.
Result<GrpoSummary> RunGrpo(const GrpoOptions& opts, const std::function<void(const std::string&)>& on_step = nullptr);

}  // namespace r1::rl
