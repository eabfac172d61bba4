#include "model/config.h"

#include <nlohmann/json.hpp>

namespace r1 {
namespace {

using json = nlohmann::json;

// Typed field readers: a missing required field or a wrong type is an error naming the field.
class FieldReader {
 public:
  FieldReader(const json& j, std::string source) : j_(j), source_(std::move(source)) {}

  Status Int(const char* name, int64_t* out, bool required, bool nullable = false) {
    if (!j_.contains(name)) return required ? Missing(name) : Status::Ok();
    const json& v = j_[name];
    if (v.is_null() && nullable) {
      *out = 0;
      return Status::Ok();
    }
    if (!v.is_number_integer()) return WrongType(name, nullable ? "an integer or null" : "an integer", v);
    *out = v.get<int64_t>();
    return Status::Ok();
  }
  Status Float(const char* name, double* out, bool required) {
    if (!j_.contains(name)) return required ? Missing(name) : Status::Ok();
    const json& v = j_[name];
    if (!v.is_number()) return WrongType(name, "a number", v);
    *out = v.get<double>();
    return Status::Ok();
  }
  Status Bool(const char* name, bool* out, bool required) {
    if (!j_.contains(name)) return required ? Missing(name) : Status::Ok();
    const json& v = j_[name];
    if (!v.is_boolean()) return WrongType(name, "true or false", v);
    *out = v.get<bool>();
    return Status::Ok();
  }
  Status String(const char* name, std::string* out, bool required) {
    if (!j_.contains(name)) return required ? Missing(name) : Status::Ok();
    const json& v = j_[name];
    if (!v.is_string()) return WrongType(name, "a string", v);
    *out = v.get<std::string>();
    return Status::Ok();
  }

 private:
  Status Missing(const char* name) const {
    return InvalidArgument(source_ + ": missing field \"" + name + "\"");
  }
  Status WrongType(const char* name, const char* expected, const json& v) const {
    return InvalidArgument(source_ + ": field \"" + name + "\" must be " + expected + ", got " +
                           v.type_name() + " " + v.dump());
  }
  const json& j_;
  std::string source_;
};

}  // namespace

kernels::RopeParams ModelConfig::Rope() const {
  kernels::RopeParams p;
  p.dim = qk_rope_head_dim;
  p.theta = rope_theta;
  p.yarn = rope_yarn;
  p.factor = rope_factor;
  p.original_max_position = rope_original_max_position;
  p.beta_fast = rope_beta_fast;
  p.beta_slow = rope_beta_slow;
  p.mscale = rope_mscale;
  p.mscale_all_dim = rope_mscale_all_dim;
  return p;
}

Result<ModelConfig> ModelConfig::FromJson(const std::string& text, const std::string& source) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(source + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(source + ": expected a JSON object");
  ModelConfig c;
  FieldReader r(j, source);
  R1_RETURN_IF_ERROR(r.String("model_type", &c.model_type, true));
  if (c.model_type != "deepseek_v3")
    return Unimplemented(source + ": model_type \"" + c.model_type +
                         "\" is not supported (expected \"deepseek_v3\")");
  R1_RETURN_IF_ERROR(r.Int("vocab_size", &c.vocab_size, true));
  R1_RETURN_IF_ERROR(r.Int("hidden_size", &c.hidden_size, true));
  R1_RETURN_IF_ERROR(r.Int("intermediate_size", &c.intermediate_size, true));
  R1_RETURN_IF_ERROR(r.Int("num_hidden_layers", &c.num_hidden_layers, true));
  R1_RETURN_IF_ERROR(r.Int("num_attention_heads", &c.num_attention_heads, true));
  R1_RETURN_IF_ERROR(r.Int("q_lora_rank", &c.q_lora_rank, true, /*nullable=*/true));
  R1_RETURN_IF_ERROR(r.Int("kv_lora_rank", &c.kv_lora_rank, true));
  R1_RETURN_IF_ERROR(r.Int("qk_nope_head_dim", &c.qk_nope_head_dim, true));
  R1_RETURN_IF_ERROR(r.Int("qk_rope_head_dim", &c.qk_rope_head_dim, true));
  R1_RETURN_IF_ERROR(r.Int("v_head_dim", &c.v_head_dim, true));
  R1_RETURN_IF_ERROR(r.Int("n_routed_experts", &c.n_routed_experts, true, /*nullable=*/true));
  R1_RETURN_IF_ERROR(r.Int("first_k_dense_replace", &c.first_k_dense_replace, c.n_routed_experts > 0));
  R1_RETURN_IF_ERROR(r.Int("moe_layer_freq", &c.moe_layer_freq, false));
  if (c.n_routed_experts > 0) {
    R1_RETURN_IF_ERROR(r.Int("moe_intermediate_size", &c.moe_intermediate_size, true));
    R1_RETURN_IF_ERROR(r.Int("n_shared_experts", &c.n_shared_experts, true, /*nullable=*/true));
    R1_RETURN_IF_ERROR(r.Int("num_experts_per_tok", &c.num_experts_per_tok, true));
    R1_RETURN_IF_ERROR(r.Int("n_group", &c.n_group, true));
    R1_RETURN_IF_ERROR(r.Int("topk_group", &c.topk_group, true));
    R1_RETURN_IF_ERROR(r.Float("routed_scaling_factor", &c.routed_scaling_factor, true));
    R1_RETURN_IF_ERROR(r.Bool("norm_topk_prob", &c.norm_topk_prob, false));
    R1_RETURN_IF_ERROR(r.String("scoring_func", &c.scoring_func, false));
    R1_RETURN_IF_ERROR(r.String("topk_method", &c.topk_method, false));
  }
  R1_RETURN_IF_ERROR(r.Float("rms_norm_eps", &c.rms_norm_eps, true));
  R1_RETURN_IF_ERROR(r.Float("rope_theta", &c.rope_theta, false));
  R1_RETURN_IF_ERROR(r.Int("max_position_embeddings", &c.max_position_embeddings, true));
  R1_RETURN_IF_ERROR(r.Bool("tie_word_embeddings", &c.tie_word_embeddings, false));
  R1_RETURN_IF_ERROR(r.Int("num_nextn_predict_layers", &c.num_nextn_predict_layers, false));
  R1_RETURN_IF_ERROR(r.String("torch_dtype", &c.torch_dtype, false));
  if (j.contains("bos_token_id") && !j["bos_token_id"].is_null())
    R1_RETURN_IF_ERROR(r.Int("bos_token_id", &c.bos_token_id, false));
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    // Several stop ids: the first is the end-of-sequence token; the tokenizer knows the rest.
    if (j["eos_token_id"].empty() || !j["eos_token_id"][0].is_number_integer())
      return InvalidArgument(source + ": field \"eos_token_id\" must be an integer or a non-empty list of integers");
    c.eos_token_id = j["eos_token_id"][0].get<int64_t>();
  } else if (j.contains("eos_token_id") && !j["eos_token_id"].is_null()) {
    R1_RETURN_IF_ERROR(r.Int("eos_token_id", &c.eos_token_id, false));
  }
  std::string act = "silu";
  R1_RETURN_IF_ERROR(r.String("hidden_act", &act, false));
  if (act != "silu")
    return Unimplemented(source + ": hidden_act \"" + act + "\" is not supported (expected \"silu\")");
  bool attention_bias = false;
  R1_RETURN_IF_ERROR(r.Bool("attention_bias", &attention_bias, false));
  if (attention_bias) return Unimplemented(source + ": attention_bias true is not supported by deepseek_v3");

  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null()) {
    const json& rs = j["rope_scaling"];
    if (!rs.is_object()) return InvalidArgument(source + ": field \"rope_scaling\" must be an object or null");
    const std::string where = source + " rope_scaling";
    FieldReader rr(rs, where);
    std::string type;
    if (rs.contains("type")) R1_RETURN_IF_ERROR(rr.String("type", &type, true));
    else R1_RETURN_IF_ERROR(rr.String("rope_type", &type, true));
    if (type != "yarn")
      return Unimplemented(where + ": type \"" + type + "\" is not supported (expected \"yarn\")");
    c.rope_yarn = true;
    R1_RETURN_IF_ERROR(rr.Float("factor", &c.rope_factor, true));
    R1_RETURN_IF_ERROR(rr.Int("original_max_position_embeddings", &c.rope_original_max_position, true));
    R1_RETURN_IF_ERROR(rr.Float("beta_fast", &c.rope_beta_fast, false));
    R1_RETURN_IF_ERROR(rr.Float("beta_slow", &c.rope_beta_slow, false));
    R1_RETURN_IF_ERROR(rr.Float("mscale", &c.rope_mscale, false));
    R1_RETURN_IF_ERROR(rr.Float("mscale_all_dim", &c.rope_mscale_all_dim, false));
  }
  R1_RETURN_IF_ERROR(c.Validate().WithContext(source));
  return c;
}

Status ModelConfig::Validate() const {
  auto positive = [](const char* name, int64_t v) -> Status {
    if (v <= 0) return InvalidArgument(std::string("field \"") + name + "\" must be positive, got " + std::to_string(v));
    return Status::Ok();
  };
  R1_RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  R1_RETURN_IF_ERROR(positive("hidden_size", hidden_size));
  R1_RETURN_IF_ERROR(positive("num_hidden_layers", num_hidden_layers));
  R1_RETURN_IF_ERROR(positive("num_attention_heads", num_attention_heads));
  R1_RETURN_IF_ERROR(positive("kv_lora_rank", kv_lora_rank));
  R1_RETURN_IF_ERROR(positive("qk_nope_head_dim", qk_nope_head_dim));
  R1_RETURN_IF_ERROR(positive("qk_rope_head_dim", qk_rope_head_dim));
  R1_RETURN_IF_ERROR(positive("v_head_dim", v_head_dim));
  R1_RETURN_IF_ERROR(positive("max_position_embeddings", max_position_embeddings));
  if (q_lora_rank < 0) return InvalidArgument("field \"q_lora_rank\" must be positive or null");
  if (qk_rope_head_dim % 2 != 0)
    return InvalidArgument("field \"qk_rope_head_dim\" must be even, got " + std::to_string(qk_rope_head_dim));
  if (!(rms_norm_eps > 0)) return InvalidArgument("field \"rms_norm_eps\" must be positive");
  if (!(rope_theta > 1)) return InvalidArgument("field \"rope_theta\" must be > 1");
  if (rope_yarn && !(rope_factor > 0)) return InvalidArgument("field \"rope_scaling.factor\" must be positive");
  if (rope_yarn && rope_original_max_position <= 0)
    return InvalidArgument("field \"rope_scaling.original_max_position_embeddings\" must be positive");
  if (moe_layer_freq <= 0) return InvalidArgument("field \"moe_layer_freq\" must be positive");
  if (first_k_dense_replace < 0 || first_k_dense_replace > num_hidden_layers)
    return InvalidArgument("field \"first_k_dense_replace\" must be in [0, num_hidden_layers], got " +
                           std::to_string(first_k_dense_replace));
  if (num_nextn_predict_layers < 0) return InvalidArgument("field \"num_nextn_predict_layers\" must be >= 0");
  bool any_dense = false;
  for (int64_t l = 0; l < num_hidden_layers; ++l) any_dense |= !IsMoeLayer(l);
  if (any_dense) R1_RETURN_IF_ERROR(positive("intermediate_size", intermediate_size));
  if (n_routed_experts < 0) return InvalidArgument("field \"n_routed_experts\" must be >= 0");
  if (n_routed_experts > 0) {
    R1_RETURN_IF_ERROR(positive("moe_intermediate_size", moe_intermediate_size));
    R1_RETURN_IF_ERROR(positive("num_experts_per_tok", num_experts_per_tok));
    R1_RETURN_IF_ERROR(positive("n_group", n_group));
    R1_RETURN_IF_ERROR(positive("topk_group", topk_group));
    if (n_shared_experts < 0) return InvalidArgument("field \"n_shared_experts\" must be >= 0");
    if (n_routed_experts % n_group != 0)
      return InvalidArgument("field \"n_group\" (" + std::to_string(n_group) + ") must divide n_routed_experts (" +
                             std::to_string(n_routed_experts) + ")");
    if (topk_group > n_group)
      return InvalidArgument("field \"topk_group\" (" + std::to_string(topk_group) + ") exceeds n_group (" +
                             std::to_string(n_group) + ")");
    if (num_experts_per_tok > topk_group * (n_routed_experts / n_group))
      return InvalidArgument("field \"num_experts_per_tok\" (" + std::to_string(num_experts_per_tok) +
                             ") exceeds the experts in topk_group groups (" +
                             std::to_string(topk_group * (n_routed_experts / n_group)) + ")");
    if (scoring_func != "sigmoid")
      return Unimplemented("scoring_func \"" + scoring_func + "\" is not supported (expected \"sigmoid\")");
    if (topk_method != "noaux_tc")
      return Unimplemented("topk_method \"" + topk_method + "\" is not supported (expected \"noaux_tc\")");
  }
  if (bos_token_id < 0 || bos_token_id >= vocab_size)
    return InvalidArgument("field \"bos_token_id\" (" + std::to_string(bos_token_id) + ") is outside the vocabulary");
  if (eos_token_id < 0 || eos_token_id >= vocab_size)
    return InvalidArgument("field \"eos_token_id\" (" + std::to_string(eos_token_id) + ") is outside the vocabulary");
  return Status::Ok();
}

std::string ModelConfig::ToJson() const {
  json j;
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["model_type"] = model_type;
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["moe_intermediate_size"] = moe_intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["first_k_dense_replace"] = first_k_dense_replace;
  j["moe_layer_freq"] = moe_layer_freq;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_attention_heads;
  j["q_lora_rank"] = q_lora_rank > 0 ? json(q_lora_rank) : json(nullptr);
  j["kv_lora_rank"] = kv_lora_rank;
  j["qk_nope_head_dim"] = qk_nope_head_dim;
  j["qk_rope_head_dim"] = qk_rope_head_dim;
  j["v_head_dim"] = v_head_dim;
  j["n_routed_experts"] = n_routed_experts;
  j["n_shared_experts"] = n_shared_experts;
  j["num_experts_per_tok"] = num_experts_per_tok;
  j["n_group"] = n_group;
  j["topk_group"] = topk_group;
  j["routed_scaling_factor"] = routed_scaling_factor;
  j["norm_topk_prob"] = norm_topk_prob;
  j["scoring_func"] = scoring_func;
  j["topk_method"] = topk_method;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  if (rope_yarn) {
    j["rope_scaling"] = {{"type", "yarn"},
                         {"factor", rope_factor},
                         {"original_max_position_embeddings", rope_original_max_position},
                         {"beta_fast", rope_beta_fast},
                         {"beta_slow", rope_beta_slow},
                         {"mscale", rope_mscale},
                         {"mscale_all_dim", rope_mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["max_position_embeddings"] = max_position_embeddings;
  j["tie_word_embeddings"] = tie_word_embeddings;
  j["num_nextn_predict_layers"] = num_nextn_predict_layers;
  j["bos_token_id"] = bos_token_id;
  j["eos_token_id"] = eos_token_id;
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  j["torch_dtype"] = torch_dtype;
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

ModelStats ComputeStats(const ModelConfig& c) {
  const int64_t C = c.hidden_size, H = c.num_attention_heads, R = c.kv_lora_rank;
  const int64_t Dqk = c.qk_head_dim(), Dr = c.qk_rope_head_dim, Dn = c.qk_nope_head_dim, Dv = c.v_head_dim;
  int64_t attn = 0;
  if (c.q_lora_rank > 0) attn += c.q_lora_rank * C + c.q_lora_rank + H * Dqk * c.q_lora_rank;
  else attn += H * Dqk * C;
  attn += (R + Dr) * C + R + H * (Dn + Dv) * R + C * H * Dv;
  const int64_t norms = 2 * C;
  const int64_t dense_mlp = 3 * C * c.intermediate_size;
  const int64_t expert = 3 * C * c.moe_intermediate_size;
  const int64_t shared = c.n_shared_experts * expert;
  // Router weight and its correction bias (counted as in spec §1.4).
  const int64_t router = c.n_routed_experts * C + c.n_routed_experts;
  ModelStats s;
  const int64_t embed = c.vocab_size * C, head = c.tie_word_embeddings ? 0 : c.vocab_size * C;
  s.total_params = embed + head + C;
  s.active_params = s.total_params;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    s.total_params += attn + norms;
    s.active_params += attn + norms;
    if (c.IsMoeLayer(l)) {
      s.total_params += c.n_routed_experts * expert + shared + router;
      s.active_params += c.num_experts_per_tok * expert + shared + router;
    } else {
      s.total_params += dense_mlp;
      s.active_params += dense_mlp;
    }
  }
  // Each MTP module: enorm, hnorm, eh_proj, one MoE (or dense) block, shared_head.norm; the
  // embedding and head are shared with the main model.
  const int64_t ffn = c.n_routed_experts > 0 ? c.n_routed_experts * expert + shared + router : dense_mlp;
  s.mtp_params = c.num_nextn_predict_layers * (2 * C + 2 * C * C + attn + norms + ffn + C);
  s.kv_cache_values_per_token = c.num_hidden_layers * (R + Dr);
  s.naive_kv_values_per_token = c.num_hidden_layers * H * (Dqk + Dv);
  return s;
}

}  // namespace r1
