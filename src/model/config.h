// The model configuration, read from a Hugging Face config.json (field names as HF spells them;
// spec §1.1). Validation names the field and what was expected.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "kernels/rope.h"

namespace r1 {

struct ModelConfig {
  std::string model_type = "deepseek_v3";
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;               // C
  int64_t intermediate_size = 0;         // dense MLP width
  int64_t moe_intermediate_size = 0;     // width of each routed and shared expert
  int64_t num_hidden_layers = 0;         // L
  int64_t first_k_dense_replace = 0;     // layers < this are dense
  int64_t moe_layer_freq = 1;
  int64_t num_attention_heads = 0;       // H
  int64_t q_lora_rank = 0;               // 0 = direct q_proj (config null)
  int64_t kv_lora_rank = 0;              // R
  int64_t qk_nope_head_dim = 0;
  int64_t qk_rope_head_dim = 0;
  int64_t v_head_dim = 0;
  int64_t n_routed_experts = 0;          // E (0 = no MoE layers)
  int64_t n_shared_experts = 0;
  int64_t num_experts_per_tok = 0;       // K
  int64_t n_group = 1;
  int64_t topk_group = 1;
  double routed_scaling_factor = 1.0;
  bool norm_topk_prob = true;
  std::string scoring_func = "sigmoid";
  std::string topk_method = "noaux_tc";
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  bool rope_yarn = false;                // rope_scaling present (type "yarn")
  double rope_factor = 1.0;
  int64_t rope_original_max_position = 4096;
  double rope_beta_fast = 32.0;
  double rope_beta_slow = 1.0;
  double rope_mscale = 0.0;
  double rope_mscale_all_dim = 0.0;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = false;
  int64_t num_nextn_predict_layers = 0;  // MTP modules stored as layers L, L+1, ...
  int64_t bos_token_id = 0;
  int64_t eos_token_id = 1;
  std::string torch_dtype = "bfloat16";

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool IsMoeLayer(int64_t layer) const {
    return n_routed_experts > 0 && layer >= first_k_dense_replace && layer % moe_layer_freq == 0;
  }
  kernels::RopeParams Rope() const;
  float SoftmaxScale() const { return kernels::SoftmaxScale(Rope(), qk_head_dim()); }

  // Parses and validates config.json text; `source` names the file in errors.
  static Result<ModelConfig> FromJson(const std::string& text, const std::string& source);
  // Checks ranges and consistency between fields.
  Status Validate() const;
  // HF config.json text for this config.
  std::string ToJson() const;
};

// Parameter counts (spec §1.4) and cache size.
struct ModelStats {
  int64_t total_params = 0;       // main model (without MTP modules)
  int64_t active_params = 0;      // per token: attention, dense, K routed + shared experts, router, embed, head
  int64_t mtp_params = 0;         // unique parameters of the MTP modules
  int64_t kv_cache_values_per_token = 0;  // absorbed latent cache: L·(R + Dr)
  int64_t naive_kv_values_per_token = 0;  // full K/V: L·H·(Dqk + Dv)
};
ModelStats ComputeStats(const ModelConfig& c);

}  // namespace r1
