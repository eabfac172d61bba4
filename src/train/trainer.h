// The training loop behind `r1 pretrain` and `r1 sft`: data windows → forward/backward (with
// gradient accumulation) → clip → AdamW → correction-bias update; progress on stderr, one JSON
// object per step in --metrics, checkpoints every --save-every steps and at the end.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"
#include "kernels/gemm.h"
#include "train/optimizer.h"

namespace r1::train {

struct TrainOptions {
  std::string stage = "pretrain";  // "pretrain" or "sft" (recorded in the checkpoint)
  // Model source: exactly one of config_path (random init) and init_dir; resume_dir overrides both.
  std::string config_path, init_dir, resume_dir;
  std::string tokenizer;  // tokenizer.json or its directory; default: the init/resume checkpoint's
  std::string data, out, metrics;
  int64_t steps = 0, batch = 1, seq = 0;
  float lr = 1e-3f, min_lr = 0.0f;
  LrSchedule schedule = LrSchedule::kConstant;
  int64_t warmup = 0;
  float weight_decay = 0.1f, clip = 1.0f;
  int64_t grad_accum = 1;
  double bias_update_speed = 0.001;
  double balance_alpha = 0.0001;
  double mtp_weight = -1;  // < 0: 0.3 when the model has an MTP module, else 0
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t save_every = 0;    // 0: only at the end
  double init_std = 0.02;    // random init of matrices (config_path)
  int max_nonfinite = 5;     // consecutive non-finite steps that stop the run
  bool quiet = false;        // no progress lines
  // The products of forward and backward: f32, or bf16 operands with f32 sums (mixed precision;
  // weights, moments, norms, softmax and losses stay f32).
  kernels::GemmPrecision precision = kernels::GemmPrecision::kF32;
};

struct TrainSummary {
  int64_t steps = 0;
  double final_loss = 0, seconds = 0, tokens_per_second = 0;
  int64_t skipped = 0;  // non-finite steps skipped
};

// `on_step`, if set, sees each step's metrics JSON (already written to --metrics).
Result<TrainSummary> Train(const TrainOptions& opts, const std::function<void(const std::string&)>& on_step = nullptr);

}  // namespace r1::train
