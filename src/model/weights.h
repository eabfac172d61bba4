// The weight list of the DeepSeek-V3 architecture and the views the forward pass reads.
//
// One list (ListTensors) drives loading, shape validation, random initialization and saving.
// Matrices stay in their file dtype (f32, bf16, or fp8 with block scales) and are read in place
// from the mapped checkpoint; norm weights and the router correction bias are copied to f32.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/status.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/config.h"

namespace r1 {

enum class TensorKind { kMatrix, kEmbedding, kNorm, kBias };

struct TensorSpec {
  std::string name;  // HF name, e.g. "model.layers.3.mlp.experts.7.down_proj.weight"
  Shape shape;
  TensorKind kind;
  bool mtp = false;  // part of a multi-token-prediction module (not used by the main forward)
};

// Every tensor of the checkpoint for `c`, main model first, then the MTP modules.
std::vector<TensorSpec> ListTensors(const ModelConfig& c);

struct MlpWeights {
  TensorView gate_proj, up_proj, down_proj;  // (F, C), (F, C), (C, F)
};

struct AttentionWeights {
  TensorView q_a_proj;            // (q_lora_rank, C) — with q LoRA
  const float* q_a_layernorm = nullptr;
  TensorView q_b_proj;            // (H·Dqk, q_lora_rank)
  TensorView q_proj;              // (H·Dqk, C) — without q LoRA
  TensorView kv_a_proj_with_mqa;  // (R + Dr, C)
  const float* kv_a_layernorm = nullptr;  // (R)
  TensorView kv_b_proj;           // (H·(Dn + Dv), R)
  TensorView o_proj;              // (C, H·Dv)
};

struct MoeWeights {
  TensorView gate;                         // router (E, C)
  const float* e_score_correction_bias = nullptr;  // (E), selection only
  std::vector<MlpWeights> experts;         // E
  bool has_shared = false;
  MlpWeights shared_experts;               // width n_shared·moe_intermediate_size
};

struct LayerWeights {
  const float* input_layernorm = nullptr;
  const float* post_attention_layernorm = nullptr;
  AttentionWeights attn;
  bool is_moe = false;
  MlpWeights mlp;  // dense layers
  MoeWeights moe;  // MoE layers
};

// One multi-token-prediction module (spec §6.1). Its embedding and head are the main model's.
struct MtpWeights {
  const float* enorm = nullptr;
  const float* hnorm = nullptr;
  TensorView eh_proj;  // (C, 2C): input [enorm(emb); hnorm(h)]
  LayerWeights block;
  const float* shared_head_norm = nullptr;
};

struct ModelWeights {
  TensorView embed_tokens;  // (V, C)
  TensorView lm_head;       // (V, C) (the embedding when tied)
  const float* norm = nullptr;
  std::vector<LayerWeights> layers;
  std::vector<MtpWeights> mtp;  // bound when the checkpoint has them

  // Owns what the views point to when it is not a mapped checkpoint.
  std::shared_ptr<io::Checkpoint> checkpoint;
  std::deque<std::vector<float>> f32_storage;
  std::deque<std::vector<uint8_t>> byte_storage;
};

// bf16 copies of a model's f32 matrices, packed for bf16 products (kernels::PackBf16Weight), and
// views that multiply by them: the policy `r1 grpo --precision bf16` samples its rollouts from.
// Packed: the attention projections except kv_b_proj (absorbed attention reads its f32 rows),
// the dense MLPs, the routed and shared experts and the LM head. The router gates stay f32, as in
// training's bf16 products (routing decisions in full precision), and so do norms, the
// correction biases and the embedding, which the views share with the masters.
class PackedBf16Weights {
 public:
  // `masters` (f32 matrices) must outlive this object and the views it hands out. With
  // `transposed`, each packed matrix also carries a packed copy of its transpose
  // (TensorView::bf16_packed_t) for the backward products of a bf16 update; twice the bytes.
  explicit PackedBf16Weights(const ModelWeights& masters, bool transposed = false);
  PackedBf16Weights(const PackedBf16Weights&) = delete;
  PackedBf16Weights& operator=(const PackedBf16Weights&) = delete;

  // Views of every tensor of the masters, the packed matrices carrying their copy.
  std::unique_ptr<ModelWeights> Views() const;
  // Repacks every copy from the masters, after they changed (an optimizer step); the views
  // handed out stay valid.
  void Refresh();
  // Bytes of the packed copies.
  size_t bytes() const;

 private:
  struct Copy {
    TensorView master;
    std::vector<uint32_t> words, words_t;  // words_t: empty unless transposed
  };
  std::vector<Copy> copies_;
  ModelWeights views_;  // views only: no storage
};

// Where BindWeights gets each tensor: a view with the spec's shape, or kNotFound.
using TensorLookup = std::function<Result<TensorView>(const TensorSpec&)>;

// Binds every tensor of the main model (and of the MTP modules when all of theirs are found)
// through `lookup`. Norm weights and biases that are not f32 are converted into w's storage.
Status BindWeights(const ModelConfig& c, const TensorLookup& lookup, ModelWeights* w);

// Binds from a checkpoint, checking each shape against the config (errors name the tensor).
Result<std::unique_ptr<ModelWeights>> LoadWeights(const ModelConfig& c,
                                                  std::shared_ptr<io::Checkpoint> ck);

// The MTP copies of the embedding and head (`model.layers.{L+k}.embed_tokens.weight`,
// `...shared_head.head.weight`): stored for compatibility, unused (the main ones are shared).
bool IsMtpSharedCopy(const TensorSpec& spec);

struct InitOptions {
  uint64_t seed = 0;
  double std = 0.02;          // matrices ~ N(0, std²); norms = 1; correction bias = 0
  DType dtype = DType::kBF16;  // storage dtype of matrices and embeddings
  bool with_mtp = true;        // write the MTP module tensors too
};

// Writes a randomly initialized HF checkpoint directory (config.json + model.safetensors).
Status WriteRandomCheckpoint(const ModelConfig& c, const InitOptions& opts, const std::string& dir);

}  // namespace r1
