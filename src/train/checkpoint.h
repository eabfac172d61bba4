// Training checkpoints: a Hugging Face model directory (config.json, model.safetensors with the
// f32 master weights, tokenizer files when known) plus the training state beside it
// (optimizer.safetensors with the AdamW moments, trainer_state.json with step, data cursor and
// RNG). The directory is written under a temporary name and swapped in atomically
// (renameat2 RENAME_EXCHANGE), so a kill at any instant leaves the previous checkpoint whole.
#pragma once

#include <cstdint>
#include <string>

#include "core/rng.h"
#include "core/status.h"
#include "model/parameters.h"
#include "train/optimizer.h"

namespace r1::train {

struct TrainerState {
  int64_t step = 0;         // optimizer steps done
  int64_t cursor = 0;       // data windows consumed
  int64_t tokens = 0;       // tokens seen
  uint64_t seed = 0;
  Rng::State rng{};
  std::string stage = "pretrain";
  std::string precision = "f32";  // of the products: "f32" or "bf16" (--precision)
};

// Writes `dir` atomically. `tokenizer_dir` (may be empty) is where tokenizer.json and
// tokenizer_config.json are copied from.
Status SaveCheckpoint(const std::string& dir, const ParameterStore& store, AdamW* opt, const TrainerState& state,
                      const std::string& tokenizer_dir);

// Reads the state written by SaveCheckpoint into `opt` and `state` (the weights are read with
// ParameterStore::FromCheckpoint).
Status LoadTrainingState(const std::string& dir, const ParameterStore& store, AdamW* opt, TrainerState* state);

// True when dir holds a checkpoint written by SaveCheckpoint.
bool IsTrainingCheckpoint(const std::string& dir);

// Copies tokenizer.json / tokenizer_config.json from `from` (a directory or a tokenizer.json
// path) into `to`, when they exist.
Status CopyTokenizerFiles(const std::string& from, const std::string& to);

}  // namespace r1::train
