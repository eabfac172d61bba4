#include "cli/model_presets.h"

namespace r1::cli {

std::vector<std::string> PresetNames() { return {"tiny", "moe-small"}; }

Result<ModelConfig> PresetConfig(const std::string& name) {
  ModelConfig c;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000;
  c.rope_yarn = true;
  c.rope_beta_fast = 32;
  c.rope_beta_slow = 1;
  c.rope_mscale = 1.0;
  c.rope_mscale_all_dim = 1.0;
  c.routed_scaling_factor = 2.5;
  c.norm_topk_prob = true;
  c.bos_token_id = 0;
  c.eos_token_id = 1;
  c.num_nextn_predict_layers = 1;
  if (name == "tiny") {
    c.vocab_size = 256;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.moe_intermediate_size = 32;
    c.num_hidden_layers = 3;
    c.first_k_dense_replace = 1;
    c.num_attention_heads = 4;
    c.q_lora_rank = 32;
    c.kv_lora_rank = 32;
    c.qk_nope_head_dim = 16;
    c.qk_rope_head_dim = 8;
    c.v_head_dim = 16;
    c.n_routed_experts = 8;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 2;
    c.n_group = 4;
    c.topk_group = 2;
    c.rope_factor = 4;
    c.rope_original_max_position = 128;
    c.max_position_embeddings = 512;
  } else if (name == "moe-small") {
    c.vocab_size = 32000;
    c.hidden_size = 512;
    c.intermediate_size = 1536;
    c.moe_intermediate_size = 512;
    c.num_hidden_layers = 8;
    c.first_k_dense_replace = 1;
    c.num_attention_heads = 8;
    c.q_lora_rank = 256;
    c.kv_lora_rank = 128;
    c.qk_nope_head_dim = 64;
    c.qk_rope_head_dim = 32;
    c.v_head_dim = 64;
    c.n_routed_experts = 32;
    c.n_shared_experts = 1;
    c.num_experts_per_tok = 4;
    c.n_group = 4;
    c.topk_group = 2;
    c.rope_factor = 4;
    c.rope_original_max_position = 1024;
    c.max_position_embeddings = 4096;
  } else {
    std::string names;
    for (const auto& n : PresetNames()) names += (names.empty() ? "" : ", ") + n;
    return UsageError("unknown preset \"" + name + "\" (known: " + names + ")");
  }
  R1_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace r1::cli
