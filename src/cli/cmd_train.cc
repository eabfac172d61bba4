// r1 pretrain | sft — training commands (flags are an interface; scripts depend on them).
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/memory.h"
#include "train/trainer.h"

namespace r1::cli {
namespace {

struct TrainArgs {
  train::TrainOptions o;
  std::string schedule = "constant";
  std::string precision = "f32";
};

void AddTrainFlags(CLI::App* cmd, TrainArgs* a, bool sft) {
  train::TrainOptions& o = a->o;
  if (!sft) cmd->add_option("--config", o.config_path, "HF config.json of a new, randomly initialized model");
  cmd->add_option("--init", o.init_dir, sft ? "Checkpoint to fine-tune (required unless --resume)" : "Checkpoint to continue from");
  cmd->add_option("--resume", o.resume_dir, "Resume an interrupted run from its checkpoint (bit-identical continuation)");
  cmd->add_option("--tokenizer", o.tokenizer, "tokenizer.json or its directory (default: the checkpoint's)");
  cmd->add_option("--data", o.data,
                  sft ? "Chats, JSONL {\"messages\": [...]}" : "JSONL {\"text\"}/{\"messages\"}, .ids or .bin token ids")
      ->required();
  cmd->add_option("--out", o.out, "Output checkpoint directory (HF layout + training state)")->required();
  cmd->add_option("--steps", o.steps, "Optimizer steps")->required();
  cmd->add_option("--batch", o.batch, "Sequences per micro-batch")->required();
  cmd->add_option("--seq", o.seq, "Tokens per sequence")->required();
  cmd->add_option("--lr", o.lr, "Peak learning rate")->required();
  cmd->add_option("--lr-schedule", a->schedule, "constant (default) or cosine")->check(CLI::IsMember({"constant", "cosine"}));
  cmd->add_option("--warmup", o.warmup, "Linear warmup steps (default 0)");
  cmd->add_option("--min-lr", o.min_lr, "Final learning rate of the cosine schedule (default 0)");
  cmd->add_option("--weight-decay", o.weight_decay, "Decoupled weight decay on matrices (default 0.1)");
  cmd->add_option("--clip", o.clip, "Clip the global gradient norm (default 1.0; 0 = off)");
  cmd->add_option("--grad-accum", o.grad_accum, "Micro-batches per optimizer step (default 1)");
  cmd->add_option("--bias-update-speed", o.bias_update_speed, "γ of the auxiliary-loss-free balancing (default 0.001)");
  cmd->add_option("--balance-alpha", o.balance_alpha, "α of the sequence-wise balance loss (default 0.0001)");
  cmd->add_option("--mtp-weight", o.mtp_weight, "λ of the multi-token-prediction loss (default 0.3 with an MTP module)");
  cmd->add_option("--seed", o.seed, "Seed of initialization and data order (default 0)");
  cmd->add_flag("--no-shuffle", [&o](int64_t) { o.shuffle = false; }, "Take the windows in order");
  cmd->add_option("--save-every", o.save_every, "Checkpoint every N steps (default: only at the end)");
  cmd->add_option("--metrics", o.metrics, "Append one JSON object per step to this file");
  cmd->add_option("--precision", a->precision,
                  "Products of forward and backward: f32 (default) or bf16 (bf16 operands, f32 sums; f32 master "
                  "weights and moments)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  if (!sft) cmd->add_option("--init-std", o.init_std, "Std of the random initialization (default 0.02)");
}

Status RunTrain(TrainArgs& a, const CommonOptions& common, bool sft) {
  a.o.stage = sft ? "sft" : "pretrain";
  a.o.schedule = a.schedule == "cosine" ? train::LrSchedule::kCosine : train::LrSchedule::kConstant;
  a.o.precision = a.precision == "bf16" ? kernels::GemmPrecision::kBf16 : kernels::GemmPrecision::kF32;
  if (sft && a.o.init_dir.empty() && a.o.resume_dir.empty()) return UsageError("sft needs --init CKPT_DIR (or --resume)");
  R1_ASSIGN_OR_RETURN(train::TrainSummary s, train::Train(a.o));
  if (common.json)
    std::printf("%s\n", nlohmann::json({{"steps", s.steps},
                                        {"final_loss", s.final_loss},
                                        {"seconds", s.seconds},
                                        {"tokens_per_s", s.tokens_per_second},
                                        {"skipped_steps", s.skipped},
                                        {"checkpoint", a.o.out}})
                            .dump()
                            .c_str());
  return Status::Ok();
}

}  // namespace

void RegisterTrainCommands(CLI::App& app) {
  {
    static CommonOptions common;
    static TrainArgs a;
    auto* cmd = AddCommand(app, "pretrain", "Train a DeepSeek-V3 model on text or token ids (next-token + MTP loss)",
                           &common, [] { KeepFreedMemoryForReuse(); return RunTrain(a, common, false); });
    AddTrainFlags(cmd, &a, false);
  }
  {
    static CommonOptions common;
    static TrainArgs a;
    auto* cmd = AddCommand(app, "sft", "Supervised fine-tuning on chats (loss on the final assistant turn)", &common,
                           [] { KeepFreedMemoryForReuse(); return RunTrain(a, common, true); });
    AddTrainFlags(cmd, &a, true);
  }
}

}  // namespace r1::cli
