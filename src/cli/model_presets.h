// Built-in model configurations for `r1 new-model --preset` (tests, benchmarks, the demo).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace r1::cli {

// "tiny": a few hundred thousand parameters, every architectural feature on (q LoRA, YaRN,
// dense + MoE layers, group-limited routing, shared expert).
// "moe-small": the benchmark model — hidden 512, 8 layers, 32 experts top-4.
Result<ModelConfig> PresetConfig(const std::string& name);
std::vector<std::string> PresetNames();

}  // namespace r1::cli
