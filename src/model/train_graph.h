// The training graph of the DeepSeek-V3 architecture: a forward that saves its activations and,
// beside each forward, its backward (as in llm.c). The loss is the contract of
// tools/ref/README.md ("Training reference"):
//   L = mean CE(main) + λ·mean CE(MTP, predicting t+2) + Σ_MoE layers mean_rows α·Σ_i f_i·P_i
// over a batch of B rows × T tokens with packed documents (attention confined to a document,
// positions restarting at each document start), optionally continuing shared prefixes
// (TrainBatch::prefix; the balance loss is then a mean over sequences instead of rows).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "model/config.h"
#include "model/ffn_tape.h"
#include "model/weights.h"

namespace r1 {

struct TrainBatch {
  int64_t B = 0, T = 0;
  std::vector<int32_t> ids;      // (B, T)
  std::vector<int32_t> targets;  // (B, T); −1 = no loss at this position
  std::vector<int32_t> doc;      // (B, T); contiguous runs of equal ids are documents
  // Shared prefixes (optional: empty, or (B, T)): prefix[i] is the id of a document earlier in i's
  // row that i's document continues, or −1. A GRPO group is one prompt followed by its G
  // completions, each continuing it: the prompt's tokens are computed once instead of G times. A
  // continuation sees the prefix's keys before its own, its positions continue after the prefix's,
  // and for the balance loss prefix + continuation is one sequence (a batch with prefixes takes the
  // balance loss per sequence rather than per row). Prefixes do not nest; MTP targets do not cross
  // from a prefix into its continuations.
  std::vector<int32_t> prefix;
};

struct LossOptions {
  double mtp_weight = 0.0;     // λ
  double balance_alpha = 0.0;  // α
  // A per-token objective in place of the cross-entropy (policy gradient, GRPO). It receives, for
  // the N = B·T positions, logp[n] = log π(targets[n]) under softmax(logits/temperature) (0 where
  // targets[n] < 0), writes coef[n] = ∂L/∂logp[n] and returns L. The MTP loss is not used then.
  std::function<double(const float* logp, float* coef)> token_objective;
  float temperature = 1.0f;
  // Logit distillation (optional, cross-entropy path only): the teacher's next-token
  // probabilities (N, V) at every position with a target. Adds distill_weight · mean over those
  // positions of KL(teacher ‖ softmax(logits)) to the loss; its gradient is
  // distill_weight·(softmax − teacher)/n at each such row.
  const float* teacher_probs = nullptr;
  double distill_weight = 0.0;
  // The main layers' feed-forward activations from a rollout's FfnTape (model/ffn_tape.h) instead
  // of computing them: tape_rows[n] is the tape row of batch position n. Each layer's attention
  // still runs, on the layer's input as the tape recorded it (the previous layer's h_out; the
  // embedding for the first). Only for the weights the tape was recorded with, unchanged since.
  const FfnTape* tape = nullptr;
  const int64_t* tape_rows = nullptr;  // (B·T)
};

struct LossReport {
  double loss = 0, main = 0, mtp = 0, balance = 0;
  int64_t main_tokens = 0, mtp_tokens = 0;
  double entropy = 0;  // mean entropy (nats) of the next-token distribution over trained positions
  double distill = 0;  // mean KL(teacher ‖ student) over trained positions (teacher_probs only)
  // Tokens routed to each expert, per MoE layer (main layers in order, then MTP blocks).
  std::vector<std::vector<int64_t>> expert_load;
};

// Forward and backward: returns the losses and ADDS grad_scale·∂L/∂θ into `grads` (the same
// layout as `w`, from ParameterStore::Grads). With grads == nullptr only the forward runs.
LossReport TrainForwardBackward(const ModelConfig& c, const ModelWeights& w, ModelWeights* grads,
                                const TrainBatch& batch, const LossOptions& opts, float grad_scale = 1.0f);

// RoPE positions of a batch: t − (start of t's document within its row), plus the length of the
// document's shared prefix when it continues one.
std::vector<int32_t> DocumentPositions(const TrainBatch& batch);

}  // namespace r1
