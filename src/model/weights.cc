#include "model/weights.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/file.h"
#include "kernels/gemm.h"

namespace r1 {
namespace {

std::string LayerPrefix(int64_t l) { return "model.layers." + std::to_string(l) + "."; }

void AddMlp(std::vector<TensorSpec>& out, const std::string& p, int64_t C, int64_t F, bool mtp) {
  out.push_back({p + "gate_proj.weight", Shape{F, C}, TensorKind::kMatrix, mtp});
  out.push_back({p + "up_proj.weight", Shape{F, C}, TensorKind::kMatrix, mtp});
  out.push_back({p + "down_proj.weight", Shape{C, F}, TensorKind::kMatrix, mtp});
}

// One transformer block (attention + dense MLP or MoE) under prefix p.
void AddBlock(std::vector<TensorSpec>& out, const ModelConfig& c, const std::string& p, bool moe, bool mtp) {
  const int64_t C = c.hidden_size, H = c.num_attention_heads, R = c.kv_lora_rank;
  const int64_t Dqk = c.qk_head_dim(), Dr = c.qk_rope_head_dim, Dn = c.qk_nope_head_dim, Dv = c.v_head_dim;
  out.push_back({p + "input_layernorm.weight", Shape{C}, TensorKind::kNorm, mtp});
  out.push_back({p + "post_attention_layernorm.weight", Shape{C}, TensorKind::kNorm, mtp});
  const std::string a = p + "self_attn.";
  if (c.q_lora_rank > 0) {
    out.push_back({a + "q_a_proj.weight", Shape{c.q_lora_rank, C}, TensorKind::kMatrix, mtp});
    out.push_back({a + "q_a_layernorm.weight", Shape{c.q_lora_rank}, TensorKind::kNorm, mtp});
    out.push_back({a + "q_b_proj.weight", Shape{H * Dqk, c.q_lora_rank}, TensorKind::kMatrix, mtp});
  } else {
    out.push_back({a + "q_proj.weight", Shape{H * Dqk, C}, TensorKind::kMatrix, mtp});
  }
  out.push_back({a + "kv_a_proj_with_mqa.weight", Shape{R + Dr, C}, TensorKind::kMatrix, mtp});
  out.push_back({a + "kv_a_layernorm.weight", Shape{R}, TensorKind::kNorm, mtp});
  out.push_back({a + "kv_b_proj.weight", Shape{H * (Dn + Dv), R}, TensorKind::kMatrix, mtp});
  out.push_back({a + "o_proj.weight", Shape{C, H * Dv}, TensorKind::kMatrix, mtp});
  if (!moe) {
    AddMlp(out, p + "mlp.", C, c.intermediate_size, mtp);
    return;
  }
  out.push_back({p + "mlp.gate.weight", Shape{c.n_routed_experts, C}, TensorKind::kMatrix, mtp});
  out.push_back({p + "mlp.gate.e_score_correction_bias", Shape{c.n_routed_experts}, TensorKind::kBias, mtp});
  for (int64_t e = 0; e < c.n_routed_experts; ++e)
    AddMlp(out, p + "mlp.experts." + std::to_string(e) + ".", C, c.moe_intermediate_size, mtp);
  if (c.n_shared_experts > 0)
    AddMlp(out, p + "mlp.shared_experts.", C, c.n_shared_experts * c.moe_intermediate_size, mtp);
}

}  // namespace

std::vector<TensorSpec> ListTensors(const ModelConfig& c) {
  const int64_t C = c.hidden_size, V = c.vocab_size;
  std::vector<TensorSpec> out;
  out.push_back({"model.embed_tokens.weight", Shape{V, C}, TensorKind::kEmbedding, false});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) AddBlock(out, c, LayerPrefix(l), c.IsMoeLayer(l), false);
  out.push_back({"model.norm.weight", Shape{C}, TensorKind::kNorm, false});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", Shape{V, C}, TensorKind::kEmbedding, false});
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    const std::string p = LayerPrefix(c.num_hidden_layers + k);
    out.push_back({p + "embed_tokens.weight", Shape{V, C}, TensorKind::kEmbedding, true});
    out.push_back({p + "enorm.weight", Shape{C}, TensorKind::kNorm, true});
    out.push_back({p + "hnorm.weight", Shape{C}, TensorKind::kNorm, true});
    out.push_back({p + "eh_proj.weight", Shape{C, 2 * C}, TensorKind::kMatrix, true});
    AddBlock(out, c, p, c.n_routed_experts > 0, true);
    out.push_back({p + "shared_head.norm.weight", Shape{C}, TensorKind::kNorm, true});
    out.push_back({p + "shared_head.head.weight", Shape{V, C}, TensorKind::kEmbedding, true});
  }
  return out;
}

bool IsMtpSharedCopy(const TensorSpec& spec) {
  return spec.mtp && (spec.name.ends_with(".embed_tokens.weight") || spec.name.ends_with(".shared_head.head.weight"));
}

Status BindWeights(const ModelConfig& c, const TensorLookup& lookup, ModelWeights* w) {
  std::map<std::string, TensorView> views;
  std::map<std::string, const float*> vectors;
  std::vector<bool> mtp_complete(static_cast<size_t>(c.num_nextn_predict_layers), true);
  for (const TensorSpec& spec : ListTensors(c)) {
    if (IsMtpSharedCopy(spec)) continue;
    auto v = lookup(spec);
    if (!v.ok()) {
      if (spec.mtp && v.status().code() == StatusCode::kNotFound) {
        // MTP modules are optional: a checkpoint without (all of) them simply has none.
        const int64_t k = std::stoll(spec.name.substr(13)) - c.num_hidden_layers;
        mtp_complete[static_cast<size_t>(k)] = false;
        continue;
      }
      return v.status();
    }
    if (spec.kind == TensorKind::kNorm || spec.kind == TensorKind::kBias) {
      if (v->dtype == DType::kF32) {
        vectors[spec.name] = v->f32();
      } else {
        w->f32_storage.push_back(ToF32(*v));
        vectors[spec.name] = w->f32_storage.back().data();
      }
    } else {
      views[spec.name] = *v;
    }
  }
  auto mlp = [&](const std::string& p) {
    return MlpWeights{views.at(p + "gate_proj.weight"), views.at(p + "up_proj.weight"),
                      views.at(p + "down_proj.weight")};
  };
  auto block = [&](const std::string& p, bool moe) {
    const std::string a = p + "self_attn.";
    LayerWeights lw;
    lw.input_layernorm = vectors.at(p + "input_layernorm.weight");
    lw.post_attention_layernorm = vectors.at(p + "post_attention_layernorm.weight");
    if (c.q_lora_rank > 0) {
      lw.attn.q_a_proj = views.at(a + "q_a_proj.weight");
      lw.attn.q_a_layernorm = vectors.at(a + "q_a_layernorm.weight");
      lw.attn.q_b_proj = views.at(a + "q_b_proj.weight");
    } else {
      lw.attn.q_proj = views.at(a + "q_proj.weight");
    }
    lw.attn.kv_a_proj_with_mqa = views.at(a + "kv_a_proj_with_mqa.weight");
    lw.attn.kv_a_layernorm = vectors.at(a + "kv_a_layernorm.weight");
    lw.attn.kv_b_proj = views.at(a + "kv_b_proj.weight");
    lw.attn.o_proj = views.at(a + "o_proj.weight");
    lw.is_moe = moe;
    if (!moe) {
      lw.mlp = mlp(p + "mlp.");
    } else {
      lw.moe.gate = views.at(p + "mlp.gate.weight");
      lw.moe.e_score_correction_bias = vectors.at(p + "mlp.gate.e_score_correction_bias");
      for (int64_t e = 0; e < c.n_routed_experts; ++e)
        lw.moe.experts.push_back(mlp(p + "mlp.experts." + std::to_string(e) + "."));
      lw.moe.has_shared = c.n_shared_experts > 0;
      if (lw.moe.has_shared) lw.moe.shared_experts = mlp(p + "mlp.shared_experts.");
    }
    return lw;
  };
  w->embed_tokens = views.at("model.embed_tokens.weight");
  w->lm_head = c.tie_word_embeddings ? w->embed_tokens : views.at("lm_head.weight");
  w->norm = vectors.at("model.norm.weight");
  w->layers.clear();
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) w->layers.push_back(block(LayerPrefix(l), c.IsMoeLayer(l)));
  w->mtp.clear();
  for (int64_t k = 0; k < c.num_nextn_predict_layers; ++k) {
    if (!mtp_complete[static_cast<size_t>(k)]) break;
    const std::string p = LayerPrefix(c.num_hidden_layers + k);
    MtpWeights m;
    m.enorm = vectors.at(p + "enorm.weight");
    m.hnorm = vectors.at(p + "hnorm.weight");
    m.eh_proj = views.at(p + "eh_proj.weight");
    m.block = block(p, c.n_routed_experts > 0);
    m.shared_head_norm = vectors.at(p + "shared_head.norm.weight");
    w->mtp.push_back(std::move(m));
  }
  return Status::Ok();
}

Result<std::unique_ptr<ModelWeights>> LoadWeights(const ModelConfig& c, std::shared_ptr<io::Checkpoint> ck) {
  auto w = std::make_unique<ModelWeights>();
  w->checkpoint = ck;
  R1_RETURN_IF_ERROR(BindWeights(c, [&](const TensorSpec& spec) { return ck->Get(spec.name, spec.shape); }, w.get()));
  return w;
}

namespace {

// Quantizes a row-major f32 matrix to fp8 e4m3 with one multiplier per 128x128 block:
// scale = amax(block)/448, stored = round(x / scale) (spec §7.2).
void QuantizeFp8(const std::vector<float>& x, int64_t rows, int64_t cols, std::vector<uint8_t>& q,
                 std::vector<float>& scales) {
  const int64_t sr = (rows + kFp8Block - 1) / kFp8Block, sc = (cols + kFp8Block - 1) / kFp8Block;
  q.assign(static_cast<size_t>(rows * cols), 0);
  scales.assign(static_cast<size_t>(sr * sc), 1.0f);
  for (int64_t br = 0; br < sr; ++br)
    for (int64_t bc = 0; bc < sc; ++bc) {
      float amax = 0.0f;
      for (int64_t r = br * kFp8Block; r < std::min(rows, (br + 1) * kFp8Block); ++r)
        for (int64_t cc = bc * kFp8Block; cc < std::min(cols, (bc + 1) * kFp8Block); ++cc)
          amax = std::max(amax, std::fabs(x[r * cols + cc]));
      const float s = amax > 0 ? amax / 448.0f : 1.0f;
      scales[br * sc + bc] = s;
      for (int64_t r = br * kFp8Block; r < std::min(rows, (br + 1) * kFp8Block); ++r)
        for (int64_t cc = bc * kFp8Block; cc < std::min(cols, (bc + 1) * kFp8Block); ++cc)
          q[r * cols + cc] = F32ToFp8E4M3(x[r * cols + cc] / s);
    }
}

}  // namespace

Status WriteRandomCheckpoint(const ModelConfig& c, const InitOptions& opts, const std::string& dir) {
  R1_RETURN_IF_ERROR(c.Validate());
  if (::mkdir(dir.c_str(), 0755) != 0 && !IsDirectory(dir))
    return IoError(dir + ": cannot create directory");
  Rng rng(opts.seed);
  io::SafetensorsWriter writer;
  for (const TensorSpec& spec : ListTensors(c)) {
    if (spec.mtp && !opts.with_mtp) continue;
    const int64_t n = spec.shape.numel();
    std::vector<float> x(static_cast<size_t>(n));
    switch (spec.kind) {
      case TensorKind::kMatrix:
      case TensorKind::kEmbedding:
        for (auto& v : x) v = static_cast<float>(rng.Normal() * opts.std);
        break;
      case TensorKind::kNorm: std::fill(x.begin(), x.end(), 1.0f); break;
      case TensorKind::kBias: std::fill(x.begin(), x.end(), 0.0f); break;
    }
    // The router stays high precision and the bias f32, as in the released checkpoints.
    const bool is_router = spec.name.size() > 16 && spec.name.ends_with("mlp.gate.weight");
    DType dt = opts.dtype;
    if (spec.kind == TensorKind::kBias) dt = DType::kF32;
    if (dt == DType::kF8E4M3 && (spec.kind != TensorKind::kMatrix || is_router)) dt = DType::kBF16;
    if (dt == DType::kF32) {
      writer.AddF32(spec.name, spec.shape, x.data());
    } else if (dt == DType::kBF16) {
      std::vector<uint16_t> h(x.size());
      for (size_t i = 0; i < x.size(); ++i) h[i] = F32ToBf16(x[i]);
      writer.Add(spec.name, DType::kBF16, spec.shape, h.data());
    } else {
      std::vector<uint8_t> q;
      std::vector<float> s;
      QuantizeFp8(x, spec.shape.rows(), spec.shape.cols(), q, s);
      writer.Add(spec.name, DType::kF8E4M3, spec.shape, q.data());
      const int64_t sr = (spec.shape.rows() + kFp8Block - 1) / kFp8Block;
      const int64_t sc = (spec.shape.cols() + kFp8Block - 1) / kFp8Block;
      writer.AddF32(spec.name + "_scale_inv", Shape{sr, sc}, s.data());
    }
  }
  R1_RETURN_IF_ERROR(writer.Write(dir + "/model.safetensors"));
  return WriteFileAtomic(dir + "/config.json", c.ToJson());
}

PackedBf16Weights::PackedBf16Weights(const ModelWeights& masters, bool transposed) {
  views_.embed_tokens = masters.embed_tokens;
  views_.lm_head = masters.lm_head;
  views_.norm = masters.norm;
  views_.layers = masters.layers;
  views_.mtp = masters.mtp;
  std::vector<TensorView*> packed;
  auto mlp = [&](MlpWeights& m) {
    for (TensorView* v : {&m.gate_proj, &m.up_proj, &m.down_proj}) packed.push_back(v);
  };
  packed.push_back(&views_.lm_head);
  for (LayerWeights& lw : views_.layers) {
    AttentionWeights& a = lw.attn;
    for (TensorView* v : {&a.q_a_proj, &a.q_b_proj, &a.q_proj, &a.kv_a_proj_with_mqa, &a.o_proj})
      if (!v->empty()) packed.push_back(v);
    if (!lw.is_moe) {
      mlp(lw.mlp);
      continue;
    }
    for (MlpWeights& e : lw.moe.experts) mlp(e);
    if (lw.moe.has_shared) mlp(lw.moe.shared_experts);
  }
  copies_.resize(packed.size());
  for (size_t i = 0; i < packed.size(); ++i) {
    TensorView* v = packed[i];
    R1_CHECK(v->dtype == DType::kF32 && v->shape.ndim == 2) << "bf16 packing needs f32 matrices";
    copies_[i].master = *v;
    copies_[i].words.resize(static_cast<size_t>(kernels::PackedBf16WeightWords(v->rows(), v->cols())));
    v->bf16_packed = copies_[i].words.data();
    if (transposed) {
      copies_[i].words_t.resize(static_cast<size_t>(kernels::PackedBf16WeightWords(v->cols(), v->rows())));
      v->bf16_packed_t = copies_[i].words_t.data();
    }
  }
  Refresh();
}

std::unique_ptr<ModelWeights> PackedBf16Weights::Views() const {
  return std::make_unique<ModelWeights>(views_);  // views_ owns no storage: a copy of views only
}

void PackedBf16Weights::Refresh() {
#pragma omp parallel for schedule(dynamic, 1)
  for (size_t i = 0; i < copies_.size(); ++i) {
    const TensorView& m = copies_[i].master;
    kernels::PackBf16Weight(m.f32(), m.rows(), m.cols(), copies_[i].words.data());
    if (!copies_[i].words_t.empty())
      kernels::PackBf16WeightTransposed(m.f32(), m.rows(), m.cols(), copies_[i].words_t.data());
  }
}

size_t PackedBf16Weights::bytes() const {
  size_t b = 0;
  for (const Copy& c : copies_) b += (c.words.size() + c.words_t.size()) * sizeof(uint32_t);
  return b;
}

}  // namespace r1
