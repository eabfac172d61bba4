// r1 info | perplexity | generate | bench | new-model — commands on one model checkpoint.
#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>

#include "cli/command.h"
#include "cli/model_presets.h"
#include "core/file.h"
#include "core/log.h"
#include "core/threads.h"
#include "infer/generate.h"
#include "io/ids.h"
#include "kernels/bandwidth.h"
#include "kernels/runtime.h"
#include "model/deepseek_v3.h"
#include "tokenizer/stream_decoder.h"
#include "tokenizer/tokenizer.h"

namespace r1::cli {
namespace {

using json = nlohmann::json;

struct ModelArgs {
  std::string model;
  bool no_mmap = false;
};

void AddModelArgs(CLI::App* cmd, ModelArgs* a) {
  cmd->add_option("MODEL", a->model, "Hugging Face checkpoint directory")->required();
  cmd->add_flag("--no-mmap", a->no_mmap, "Read the weights into memory instead of mapping them");
}

Result<std::unique_ptr<DeepSeekV3>> LoadModel(const ModelArgs& a) {
  Timer t;
  auto m = DeepSeekV3::Load(a.model, io::LoadOptions{!a.no_mmap});
  if (m.ok()) LogInfo("loaded %s in %.2f s", a.model.c_str(), t.Seconds());
  return m;
}

std::string Human(double n) {
  const char* units[] = {"", "K", "M", "B", "T"};
  int u = 0;
  while (std::fabs(n) >= 1000 && u < 4) {
    n /= 1000;
    ++u;
  }
  return StrFormat(u ? "%.2f%s" : "%.0f%s", n, units[u]);
}

// ---- info -------------------------------------------------------------------------------------

Status RunInfo(const ModelArgs& a, const CommonOptions& common) {
  R1_ASSIGN_OR_RETURN(auto model, LoadModel(a));
  const ModelConfig& c = model->config();
  const ModelStats s = ComputeStats(c);
  const int64_t cache_bytes = s.kv_cache_values_per_token * static_cast<int64_t>(sizeof(float));
  std::string layout;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) layout += c.IsMoeLayer(l) ? 'M' : 'D';
  if (common.json) {
    json j = {{"model", a.model},
              {"total_params", s.total_params},
              {"active_params", s.active_params},
              {"mtp_params", s.mtp_params},
              {"kv_cache_values_per_token", s.kv_cache_values_per_token},
              {"kv_cache_bytes_per_token", cache_bytes},
              {"kv_cache_bytes_per_token_bf16", s.kv_cache_values_per_token * 2},
              {"naive_kv_bytes_per_token_bf16", s.naive_kv_values_per_token * 2},
              {"layers", c.num_hidden_layers},
              {"layout", layout},
              {"dense_layers", std::count(layout.begin(), layout.end(), 'D')},
              {"moe_layers", std::count(layout.begin(), layout.end(), 'M')},
              {"hidden_size", c.hidden_size},
              {"vocab_size", c.vocab_size},
              {"heads", c.num_attention_heads},
              {"q_lora_rank", c.q_lora_rank},
              {"kv_lora_rank", c.kv_lora_rank},
              {"experts", c.n_routed_experts},
              {"experts_per_token", c.num_experts_per_tok},
              {"shared_experts", c.n_shared_experts},
              {"max_position_embeddings", c.max_position_embeddings},
              {"weight_bytes", model->weights().checkpoint->TotalBytes()}};
    std::printf("%s\n", j.dump(2).c_str());
    return Status::Ok();
  }
  std::printf("model            %s (deepseek_v3)\n", a.model.c_str());
  std::printf("parameters       %s total, %s activated per token (%.1f%%)", Human(double(s.total_params)).c_str(),
              Human(double(s.active_params)).c_str(), 100.0 * double(s.active_params) / double(s.total_params));
  if (s.mtp_params) std::printf(", + %s in MTP modules", Human(double(s.mtp_params)).c_str());
  std::printf("\n");
  std::printf("layers           %lld: %s  (D dense, M MoE)\n", static_cast<long long>(c.num_hidden_layers),
              layout.c_str());
  std::printf("attention        MLA, %lld heads, q %s, kv latent %lld + rope %lld, head dims %lld/%lld/%lld\n",
              static_cast<long long>(c.num_attention_heads),
              c.q_lora_rank ? StrFormat("LoRA %lld", static_cast<long long>(c.q_lora_rank)).c_str() : "direct",
              static_cast<long long>(c.kv_lora_rank), static_cast<long long>(c.qk_rope_head_dim),
              static_cast<long long>(c.qk_nope_head_dim), static_cast<long long>(c.qk_rope_head_dim),
              static_cast<long long>(c.v_head_dim));
  if (c.n_routed_experts)
    std::printf("experts          %lld routed (top-%lld, %lld groups keep %lld) + %lld shared, width %lld\n",
                static_cast<long long>(c.n_routed_experts), static_cast<long long>(c.num_experts_per_tok),
                static_cast<long long>(c.n_group), static_cast<long long>(c.topk_group),
                static_cast<long long>(c.n_shared_experts), static_cast<long long>(c.moe_intermediate_size));
  std::printf("kv cache         %lld values/token = %lld bytes f32 (%lld bf16); naive K/V would be %lld bf16 (%.1fx)\n",
              static_cast<long long>(s.kv_cache_values_per_token), static_cast<long long>(cache_bytes),
              static_cast<long long>(s.kv_cache_values_per_token * 2),
              static_cast<long long>(s.naive_kv_values_per_token * 2),
              double(s.naive_kv_values_per_token) / double(s.kv_cache_values_per_token));
  std::printf("context          %lld positions%s\n", static_cast<long long>(c.max_position_embeddings),
              c.rope_yarn ? StrFormat(" (YaRN x%g over %lld)", c.rope_factor,
                                      static_cast<long long>(c.rope_original_max_position)).c_str()
                          : "");
  std::printf("weights          %s bytes on disk\n", Human(double(model->weights().checkpoint->TotalBytes())).c_str());
  return Status::Ok();
}

// ---- perplexity -------------------------------------------------------------------------------

Status RunPerplexity(const ModelArgs& a, const std::string& ids_path, const CommonOptions& common) {
  R1_ASSIGN_OR_RETURN(auto model, LoadModel(a));
  R1_ASSIGN_OR_RETURN(std::vector<int32_t> ids, io::ReadIdsFile(ids_path));
  const ModelConfig& c = model->config();
  const int64_t T = static_cast<int64_t>(ids.size()), V = c.vocab_size;
  if (T < 2) return InvalidArgument(ids_path + ": needs at least 2 token ids, has " + std::to_string(T));
  if (T > c.max_position_embeddings)
    return OutOfRange(ids_path + ": " + std::to_string(T) + " tokens exceed the context of " +
                      std::to_string(c.max_position_embeddings));
  for (int64_t t = 0; t < T; ++t)
    if (ids[t] >= V)
      return InvalidArgument(ids_path + ": token " + std::to_string(t + 1) + " is id " + std::to_string(ids[t]) +
                             ", outside the vocabulary (" + std::to_string(V) + ")");
  std::vector<float> logits(static_cast<size_t>(T * V));
  Timer timer;
  model->Forward(ids.data(), T, logits.data());
  const double sec = timer.Seconds();
  double total = 0;
  for (int64_t t = 0; t + 1 < T; ++t) total -= LogSoftmaxAt(logits.data() + t * V, V, ids[t + 1]);
  const double nll = total / static_cast<double>(T - 1);
  LogInfo("forward over %lld tokens in %.3f s (%.1f tokens/s)", static_cast<long long>(T), sec, double(T) / sec);
  if (common.json) {
    std::printf("%s\n", json({{"nll", nll}, {"tokens", T - 1}, {"perplexity", std::exp(nll)}}).dump().c_str());
  } else {
    std::printf("nll %.6f over %lld predictions, perplexity %.4f\n", nll, static_cast<long long>(T - 1), std::exp(nll));
  }
  return Status::Ok();
}

// ---- generate ---------------------------------------------------------------------------------

struct GenerateArgs {
  std::string ids_path, prompt;
  int64_t max_new_tokens = 0;
  float temperature = 0.0f, top_p = 1.0f;
  int32_t top_k = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
};

Status RunGenerate(const ModelArgs& a, const GenerateArgs& g, const CommonOptions& common) {
  if (g.ids_path.empty() == g.prompt.empty()) return UsageError("give exactly one of --ids FILE or --prompt TEXT");
  R1_ASSIGN_OR_RETURN(auto model, LoadModel(a));
  // The tokenizer, when the checkpoint directory has one: --prompt needs it; with --ids it turns
  // the output into text too.
  std::unique_ptr<tok::Tokenizer> tokenizer;
  if (FileExists(a.model + "/tokenizer.json")) {
    R1_ASSIGN_OR_RETURN(tokenizer, tok::Tokenizer::Load(a.model));
  } else if (!g.prompt.empty()) {
    return InvalidArgument(a.model + ": --prompt needs a tokenizer.json in the model directory (or use --ids)");
  }
  std::vector<int32_t> prompt;
  if (!g.prompt.empty()) {
    prompt = tokenizer->Encode(g.prompt, /*add_special_tokens=*/true);
  } else {
    R1_ASSIGN_OR_RETURN(prompt, io::ReadIdsFile(g.ids_path));
  }
  GenerateOptions opts;
  opts.max_new_tokens = g.max_new_tokens;
  opts.sampling = SamplingParams{g.temperature, g.top_p, g.top_k, g.seed};
  if (!g.ignore_eos) opts.stop_ids.push_back(static_cast<int32_t>(model->config().eos_token_id));
  bool first = true;
  std::unique_ptr<tok::StreamDecoder> stream_text;
  if (tokenizer) stream_text = std::make_unique<tok::StreamDecoder>(*tokenizer);
  auto stream = [&](int32_t id) {
    if (!common.json) {
      if (stream_text) std::fputs(stream_text->Push(id).c_str(), stdout);
      else std::printf(first ? "%d" : " %d", id);
      std::fflush(stdout);
      first = false;
    }
    return true;
  };
  R1_ASSIGN_OR_RETURN(GenerateResult res, Generate(*model, prompt, opts, stream));
  const double n = static_cast<double>(res.ids.size());
  LogInfo("prompt %zu tokens: prefill %.3f s (%.1f tokens/s); %zu new tokens in %.3f s (%.1f tokens/s)%s",
          prompt.size(), res.prefill_seconds, double(prompt.size()) / std::max(res.prefill_seconds, 1e-9),
          res.ids.size(), res.decode_seconds, n > 1 ? (n - 1) / std::max(res.decode_seconds, 1e-9) : 0.0,
          res.stopped ? ", stopped at end-of-sequence" : "");
  if (common.json) {
    json out = {{"ids", res.ids}};
    if (tokenizer) out["text"] = tokenizer->Decode(res.ids);
    std::printf("%s\n", out.dump().c_str());
  } else {
    if (stream_text) std::fputs(stream_text->Finish().c_str(), stdout);
    std::printf("\n");
  }
  return Status::Ok();
}

// ---- bench ------------------------------------------------------------------------------------

// Weight bytes one decode step reads: the matrices one token uses (the K routed experts as
// average expert size × K) and one embedding row.
double DecodeWeightBytes(const DeepSeekV3& m) {
  const ModelWeights& w = m.weights();
  return m.DecodeMatrixBytes(DeepSeekV3::RoutedExperts::kOneToken) +
         double(w.embed_tokens.nbytes()) / double(m.config().vocab_size);
}

Status RunBench(const ModelArgs& a, int64_t prompt_len, int64_t decode_len, int reps, const CommonOptions& common) {
  R1_ASSIGN_OR_RETURN(auto model, LoadModel(a));
  const ModelConfig& c = model->config();
  if (prompt_len < 1 || decode_len < 1 || reps < 1) return UsageError("--prompt, --decode and --reps must be >= 1");
  if (prompt_len + decode_len > c.max_position_embeddings)
    return UsageError("--prompt + --decode exceed the model's context of " + std::to_string(c.max_position_embeddings));
  const int64_t V = c.vocab_size;
  Rng rng(1);
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
  for (auto& id : prompt) id = static_cast<int32_t>(rng.Below(static_cast<uint64_t>(V)));
  std::vector<double> prefill, decode;
  std::vector<float> logits(static_cast<size_t>(V)), step(static_cast<size_t>(V));
  LogInfo("bench: %d reps of prefill %lld tokens + decode %lld tokens, %d threads, OpenBLAS core %s", reps,
          static_cast<long long>(prompt_len), static_cast<long long>(decode_len), NumThreads(),
          kernels::BlasCoreName().c_str());
  for (int r = 0; r <= reps; ++r) {  // rep 0 warms up caches and page mappings
    LatentCache cache = model->NewCache(prompt_len + decode_len);
    Timer t;
    model->Forward(prompt.data(), prompt_len, logits.data(), &cache, /*last_only=*/true);
    const double tp = t.Seconds();
    int32_t next = prompt.back();
    t.Reset();
    for (int64_t i = 0; i < decode_len; ++i) {
      R1_RETURN_IF_ERROR(model->Decode(&next, 1, &cache, step.data()));
      next = static_cast<int32_t>(std::max_element(step.begin(), step.end()) - step.begin());
    }
    const double td = t.Seconds();
    if (r == 0) continue;
    prefill.push_back(double(prompt_len) / tp);
    decode.push_back(double(decode_len) / td);
  }
  std::sort(prefill.begin(), prefill.end());
  std::sort(decode.begin(), decode.end());
  const double pf = prefill[prefill.size() / 2], dc = decode[decode.size() / 2];
  const double bytes = DecodeWeightBytes(*model);
  const double bw = kernels::MeasureReadBandwidth() * 1e9;
  const double roof = bw / bytes;  // tokens/s if every step only streamed its weights once
  if (common.json) {
    std::printf("%s\n", json({{"model", a.model},
                              {"threads", NumThreads()},
                              {"blas_core", kernels::BlasCoreName()},
                              {"prompt_tokens", prompt_len},
                              {"decode_tokens", decode_len},
                              {"prefill_tokens_per_s", pf},
                              {"decode_tokens_per_s", dc},
                              {"decode_weight_bytes_per_token", bytes},
                              {"memory_bandwidth_gbs", bw / 1e9},
                              {"roofline_tokens_per_s", roof},
                              {"fraction_of_roofline", dc / roof}})
                            .dump(2)
                            .c_str());
  } else {
    std::printf("threads          %d (OpenBLAS core %s)\n", NumThreads(), kernels::BlasCoreName().c_str());
    std::printf("prefill          %.1f tokens/s (%lld-token prompt, median of %d)\n", pf,
                static_cast<long long>(prompt_len), reps);
    std::printf("decode           %.1f tokens/s (median of %d x %lld tokens)\n", dc, reps,
                static_cast<long long>(decode_len));
    std::printf("roofline         %.2f MB of weights per token / %.1f GB/s measured = %.1f tokens/s\n", bytes / 1e6,
                bw / 1e9, roof);
    std::printf("decode reaches   %.0f%% of the bandwidth roofline\n", 100.0 * dc / roof);
  }
  return Status::Ok();
}

// ---- new-model --------------------------------------------------------------------------------

struct NewModelArgs {
  std::string config_path, preset, out, dtype = "bf16";
  uint64_t seed = 0;
  double std = 0.02;
  bool no_mtp = false;
};

Status RunNewModel(const NewModelArgs& n) {
  if (n.config_path.empty() == n.preset.empty()) return UsageError("give exactly one of --config FILE or --preset NAME");
  ModelConfig c;
  if (!n.preset.empty()) {
    R1_ASSIGN_OR_RETURN(c, PresetConfig(n.preset));
  } else {
    R1_ASSIGN_OR_RETURN(std::string text, ReadFileToString(n.config_path));
    R1_ASSIGN_OR_RETURN(c, ModelConfig::FromJson(text, n.config_path));
  }
  InitOptions opts;
  opts.seed = n.seed;
  opts.std = n.std;
  opts.with_mtp = !n.no_mtp;
  if (n.dtype == "f32") opts.dtype = DType::kF32;
  else if (n.dtype == "bf16") opts.dtype = DType::kBF16;
  else if (n.dtype == "fp8") opts.dtype = DType::kF8E4M3;
  else return UsageError("--dtype must be f32, bf16 or fp8, got \"" + n.dtype + "\"");
  if (!(n.std > 0)) return UsageError("--std must be positive");
  c.torch_dtype = n.dtype == "f32" ? "float32" : "bfloat16";
  Timer t;
  R1_RETURN_IF_ERROR(WriteRandomCheckpoint(c, opts, n.out));
  const ModelStats s = ComputeStats(c);
  LogInfo("wrote %s: %s parameters (%s active), %s weights, in %.1f s", n.out.c_str(),
          Human(double(s.total_params)).c_str(), Human(double(s.active_params)).c_str(), n.dtype.c_str(), t.Seconds());
  return Status::Ok();
}

}  // namespace

void RegisterModelCommands(CLI::App& app) {
  {
    static CommonOptions common;
    static ModelArgs a;
    auto* cmd = AddCommand(app, "info", "Parameters (total, activated per token), KV-cache size, layer layout",
                           &common, [] { return RunInfo(a, common); });
    AddModelArgs(cmd, &a);
  }
  {
    static CommonOptions common;
    static ModelArgs a;
    static std::string ids;
    auto* cmd = AddCommand(app, "perplexity",
                           "Mean next-token negative log-likelihood of a token-id file (one full forward)", &common,
                           [] { return RunPerplexity(a, ids, common); });
    AddModelArgs(cmd, &a);
    cmd->add_option("--ids", ids, "File of whitespace-separated token ids, used as given (no BOS added)")->required();
  }
  {
    static CommonOptions common;
    static ModelArgs a;
    static GenerateArgs g;
    auto* cmd = AddCommand(app, "generate", "Generate tokens from a prompt (latent-cache decode)", &common,
                           [] { return RunGenerate(a, g, common); });
    AddModelArgs(cmd, &a);
    cmd->add_option("--ids", g.ids_path, "Prompt as a file of whitespace-separated token ids");
    cmd->add_option("--prompt", g.prompt, "Prompt text (needs the model's tokenizer)");
    cmd->add_option("--max-new-tokens", g.max_new_tokens, "Tokens to generate")->required()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    cmd->add_option("--temperature", g.temperature, "Sampling temperature; 0 = greedy (default)")->check(CLI::Range(0.0f, 100.0f));
    cmd->add_option("--top-p", g.top_p, "Nucleus sampling mass (default 1)")->check(CLI::Range(0.0f, 1.0f));
    cmd->add_option("--top-k", g.top_k, "Keep the k most likely tokens (default 0 = all)")->check(CLI::Range(0, 1 << 30));
    cmd->add_option("--seed", g.seed, "Sampling seed (default 0)");
    cmd->add_flag("--ignore-eos", g.ignore_eos, "Do not stop at the end-of-sequence token");
  }
  {
    static CommonOptions common;
    static ModelArgs a;
    static int64_t prompt = 128, decode = 32;
    static int reps = 3;
    auto* cmd = AddCommand(app, "bench", "Prefill and decode tokens/s, and decode against the memory-bandwidth roofline",
                           &common, [] { return RunBench(a, prompt, decode, reps, common); });
    AddModelArgs(cmd, &a);
    cmd->add_option("--prompt", prompt, "Prefill length (default 128)");
    cmd->add_option("--decode", decode, "Decoded tokens per repetition (default 32)");
    cmd->add_option("--reps", reps, "Repetitions; the median is reported (default 3)");
  }
  {
    static CommonOptions common;
    static NewModelArgs n;
    auto* cmd = AddCommand(app, "new-model", "Write a randomly initialized DeepSeek-V3 checkpoint directory", &common,
                           [] { return RunNewModel(n); });
    cmd->add_option("--config", n.config_path, "HF config.json to instantiate");
    cmd->add_option("--preset", n.preset, "Built-in config: tiny, moe-small");
    cmd->add_option("--out", n.out, "Output directory")->required();
    cmd->add_option("--dtype", n.dtype, "Weight storage: f32, bf16 (default) or fp8 (128x128 block scales)");
    cmd->add_option("--seed", n.seed, "Initialization seed (default 0)");
    cmd->add_option("--std", n.std, "Standard deviation of the matrices (default 0.02)");
    cmd->add_flag("--no-mtp", n.no_mtp, "Leave out the multi-token-prediction module");
  }
}

}  // namespace r1::cli
