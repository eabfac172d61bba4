// Config parsing and the derived counts of spec §1.4 for the released 671B configuration.
#include <gtest/gtest.h>

#include "model/config.h"

namespace r1 {
namespace {

const char* kV3Config = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
  "num_hidden_layers": 61, "first_k_dense_replace": 3, "moe_layer_freq": 1, "num_attention_heads": 128,
  "num_key_value_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
  "qk_rope_head_dim": 64, "v_head_dim": 128, "n_routed_experts": 256, "n_shared_experts": 1,
  "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5,
  "scoring_func": "sigmoid", "topk_method": "noaux_tc", "norm_topk_prob": true, "seq_aux": true,
  "aux_loss_alpha": 0.001, "ep_size": 1, "hidden_act": "silu", "rms_norm_eps": 1e-06, "rope_theta": 10000,
  "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096, "beta_fast": 32,
                   "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
  "max_position_embeddings": 163840, "attention_bias": false, "attention_dropout": 0.0,
  "tie_word_embeddings": false, "num_nextn_predict_layers": 1, "bos_token_id": 0, "eos_token_id": 1,
  "torch_dtype": "bfloat16",
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                          "weight_block_size": [128, 128]}
})";

TEST(Config, DeepSeekV3CountsMatchSpec) {
  auto c = ModelConfig::FromJson(kV3Config, "config.json");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  const ModelStats s = ComputeStats(*c);
  EXPECT_EQ(s.total_params, 671026419200);   // spec §1.4
  EXPECT_EQ(s.active_params, 37552297472);   // spec §1.4
  EXPECT_NEAR(static_cast<double>(s.mtp_params), 11.61e9, 0.01e9);
  EXPECT_EQ(s.kv_cache_values_per_token, 61 * 576);
  EXPECT_NEAR(static_cast<double>(s.naive_kv_values_per_token) / static_cast<double>(s.kv_cache_values_per_token), 71.1, 0.05);
  EXPECT_NEAR(c->SoftmaxScale(), 0.13523378f, 1e-7);
  EXPECT_FALSE(c->IsMoeLayer(2));
  EXPECT_TRUE(c->IsMoeLayer(3));
}

TEST(Config, RoundTripThroughJson) {
  auto c = ModelConfig::FromJson(kV3Config, "config.json");
  ASSERT_TRUE(c.ok());
  auto again = ModelConfig::FromJson(c->ToJson(), "again.json");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(ComputeStats(*again).total_params, ComputeStats(*c).total_params);
  EXPECT_EQ(again->rope_factor, 40);
  EXPECT_EQ(again->q_lora_rank, 1536);
}

}  // namespace
}  // namespace r1
