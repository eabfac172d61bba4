// A two-layer DeepSeek-V3 config small enough for finite differences and exact comparisons of the
// training graph: hidden 16, 2 heads, kv LoRA 8, no MTP; with `moe`, layer 1 is an MoE of 4 routed
// experts (top-2) and 1 shared.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include "model/config.h"

namespace r1::test_util {

// q_lora_rank 0: the query comes straight from the hidden state.
inline ModelConfig TinyTrainConfig(bool moe, int64_t vocab, int64_t q_lora_rank) {
  nlohmann::json j = {{"model_type", "deepseek_v3"}, {"vocab_size", vocab},   {"hidden_size", 16},
                      {"intermediate_size", 24},     {"num_hidden_layers", 2}, {"num_attention_heads", 2},
                      {"q_lora_rank", nullptr},      {"kv_lora_rank", 8},      {"qk_nope_head_dim", 4},
                      {"qk_rope_head_dim", 4},       {"v_head_dim", 4},        {"max_position_embeddings", 64},
                      {"n_routed_experts", nullptr}, {"num_nextn_predict_layers", 0}, {"rms_norm_eps", 1e-6},
                      {"rope_theta", 10000.0}};
  if (q_lora_rank > 0) j["q_lora_rank"] = q_lora_rank;
  if (moe) {
    j["n_routed_experts"] = 4;
    j["first_k_dense_replace"] = 1;
    j["moe_intermediate_size"] = 8;
    j["n_shared_experts"] = 1;
    j["num_experts_per_tok"] = 2;
    j["n_group"] = 1;
    j["topk_group"] = 1;
    j["routed_scaling_factor"] = 1.0;
  }
  auto c = ModelConfig::FromJson(j.dump(), "test");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return c.value();
}

}  // namespace r1::test_util
