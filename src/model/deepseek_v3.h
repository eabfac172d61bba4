// The DeepSeek-V3 transformer (spec §2–§5): MLA attention with decoupled RoPE/YaRN, dense
// SwiGLU MLPs in the first layers, DeepSeekMoE after them.
//
// Two attention paths share every other line of the block:
//   * Forward — naive MLA (full per-head K/V; prefill and training), positions 0..T-1; it can
//     also fill a LatentCache with what it computed;
//   * Decode — absorbed MLA: kv_b_proj folded into the query (W_UK) and the output (W_UV), the
//     cache holding only c and k_pe per token (spec §3.3).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/memory.h"
#include "core/status.h"
#include "io/safetensors.h"
#include "kernels/matmul.h"
#include "model/config.h"
#include "model/ffn_tape.h"
#include "model/latent_cache.h"
#include "model/weights.h"

namespace r1 {

// The threads of one OpenMP team that each decode their own batch (a per-thread rollout) and
// share the routed experts of every MoE layer: each thread routes its tokens and publishes them,
// each expert runs once per layer on every thread's tokens sent to it, so that its weights are
// read once per layer (instead of once per thread), and each thread then adds its tokens' weighted
// outputs in the usual order. A thread's rows are bit for bit what decoding its batch alone gives.
// Every thread of the team must call DecodeBatch with the same exchange the same number of times;
// the exchange holds no state between layers beyond reused buffers.
class ExpertExchange {
 public:
  // For a team of `threads` and a model with `experts` routed experts per MoE layer.
  ExpertExchange(int threads, int64_t experts);
  int threads() const { return static_cast<int>(tokens_.size()); }

 private:
  friend class DeepSeekV3;
  struct Tokens {              // one thread's tokens of the current MoE layer
    const float* x = nullptr;  // (T, C) normed inputs
    int64_t T = 0;
    const int32_t* idx = nullptr;  // (T, K) selected experts
    FfnTapeRows tape;              // where the thread's tokens are recorded, if anywhere
  };
  std::vector<Tokens> tokens_;               // per thread
  std::atomic<int64_t> next_{0};             // the next expert of the layer's order to claim
  std::vector<ScratchVector<float>> outputs_;  // per routed expert: its rows, in (thread, slot) order
  std::vector<int> failed_;                  // per thread: its DecodeBatch input was invalid
};

class DeepSeekV3 {
 public:
  // Loads config.json and the weights of a Hugging Face checkpoint directory.
  static Result<std::unique_ptr<DeepSeekV3>> Load(const std::string& dir, const io::LoadOptions& opts = {});
  DeepSeekV3(ModelConfig config, std::unique_ptr<ModelWeights> weights);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return *weights_; }

  // Full causal forward over ids (T) at positions 0..T-1 with naive attention.
  // logits: (T, V), or (1, V) for the last position only with last_only (prefill: the other rows
  // are never read). With `cache` (empty, capacity >= T), stores every layer's latent and rope key.
  // With `tape`, records token t's feed-forward activations in row tape.rows[t] (FfnTape; rows < 0
  // are skipped).
  void Forward(const int32_t* ids, int64_t T, float* logits, LatentCache* cache = nullptr, bool last_only = false,
               const FfnTapeRows& tape = {}) const;

  // Forward with last_only for several prompts at once: prompt i at positions 0.. into caches[i]
  // (empty, each its own), the products on all prompts' rows together, attention per prompt.
  // logits: (n, V), prompt i's last token in row i: Forward on prompt i alone up to the rounding
  // of the products, whose f32 kernels depend on the number of rows (GEMV or sgemm). With `tape`,
  // records token t of the concatenated prompts in row tape.rows[t].
  Status Prefill(std::span<const std::vector<int32_t>> prompts, LatentCache* const* caches, float* logits,
                 const FfnTapeRows& tape = {}) const;

  // Appends T tokens at positions cache->length()... with absorbed attention over the cache.
  // logits: (T, V), or (1, V) for the last token only when last_only.
  Status Decode(const int32_t* ids, int64_t T, LatentCache* cache, float* logits, bool last_only = false) const;

  // One decode step for B independent sequences: ids[b] is appended to caches[b] at its own
  // position. All matrix products run on the B rows together; attention runs per sequence.
  // logits: (B, V). With B <= kernels::kMaxBatchGemv every row is bit for bit Decode on its
  // sequence alone (the batched GEMV); wider products go to sgemm, whose rounding depends on B.
  // With `exchange`, called by every thread of the team it was made for, each with its own
  // sequences: the MoE layers' routed experts are computed once for all of the team's tokens
  // (ExpertExchange). If any thread's input is invalid, every thread returns an error. With
  // `tape`, records sequence b's token in row tape.rows[b], as Forward does.
  Status DecodeBatch(const int32_t* ids, int64_t B, LatentCache* const* caches, float* logits,
                     ExpertExchange* exchange = nullptr, const FfnTapeRows& tape = {}) const;

  // Memory traffic since load, a gauge for benchmarks: the bytes of every weight matrix once per
  // product that used it (the batched GEMV streams a matrix once for up to 32 rows; sgemm's
  // re-reads of wider products, served from cache, are not counted), the embedding rows looked
  // up, and the latent-cache rows absorbed attention read. Counts every caller of this model
  // (relaxed atomic: exact once the callers have returned).
  uint64_t BytesStreamed() const { return bytes_streamed_.load(std::memory_order_relaxed); }

  // Bytes of the weight matrices a decode step reads: attention, dense MLPs, router gates, shared
  // experts, the LM head (not the embedding table or the MTP modules), and of the routed experts
  // either all of them (kAll: a batch whose tokens touch every expert) or what one token uses
  // (kOneToken: the average expert's bytes × num_experts_per_tok).
  enum class RoutedExperts { kAll, kOneToken };
  double DecodeMatrixBytes(RoutedExperts experts) const;

  LatentCache NewCache(int64_t capacity) const {
    return LatentCache(config_.num_hidden_layers, capacity, config_.kv_lora_rank, config_.qk_rope_head_dim);
  }

 private:
  // Rows [row0, row0 + n) of a batch belong to one sequence whose cache is `cache`.
  struct Segment {
    LatentCache* cache;
    int64_t row0, n;
  };
  // Adds the attention output of layer l to h (T, C): naive, each segment attending to its own
  // rows (all rows one sequence without segments) and filling its cache if it has one; or
  // absorbed, each segment against its own cache.
  void AttentionNaive(int64_t l, const float* x, int64_t T, const int32_t* pos, float* h,
                      const std::vector<Segment>& segs) const;
  void AttentionAbsorbed(int64_t l, const float* x, int64_t T, const int32_t* pos, float* h,
                         const std::vector<Segment>& segs) const;
  Status CheckAppend(const LatentCache& cache, int64_t n) const;
  // k::MatMul, counted in bytes_streamed_.
  void Product(const float* x, int64_t T, const TensorView& w, float* out, bool accumulate = false) const;
  void Streamed(uint64_t bytes) const { bytes_streamed_.fetch_add(bytes, std::memory_order_relaxed); }
  // k::MatMulSharedInput (x packed once for every matrix), counted in bytes_streamed_.
  void Products(const float* x, int64_t T, std::span<const kernels::SharedInputJob> jobs) const;
  // From the normed input x (T, C): q (T, H, Dqk) with RoPE applied to its rope part, the
  // normalized latent c (T, R) and the rotated rope key kpe (T, Dr).
  void QueryAndLatent(const LayerWeights& lw, const float* x, int64_t T, const int32_t* pos, float* q, float* c,
                      float* kpe) const;
  // Adds the feed-forward output of layer l (dense or MoE) for normed input x (T, C) to h,
  // recording its activations on the tape if given.
  void FeedForward(int64_t l, const float* x, int64_t T, float* h, ExpertExchange* ex, const FfnTapeRows& tape) const;
  // Layer l's dense MLP; its gate/up pre-activations go on the tape if given.
  void Mlp(const MlpWeights& w, const float* x, int64_t T, float* out, bool accumulate, const FfnTapeRows& tape,
           int64_t l) const;
  void Moe(int64_t l, const float* x, int64_t T, float* h, ExpertExchange* ex, const FfnTapeRows& tape) const;
  // Runs all layers over ids (T) at positions pos, then the final norm and head. Naive attention
  // runs each segment on its own rows (all rows one sequence without segments), filling its
  // cache if it has one; absorbed attention runs each segment against its own cache.
  // logits: (T, V), or one row per segment (its last) when last_only.
  void Run(const int32_t* ids, int64_t T, const int32_t* pos, bool absorbed, const std::vector<Segment>& segs,
           float* logits, bool last_only, ExpertExchange* ex = nullptr, const FfnTapeRows& tape = {}) const;

  ModelConfig config_;
  std::unique_ptr<ModelWeights> weights_;
  std::vector<float> inv_freq_;
  float rope_attention_factor_ = 1.0f;
  float softmax_scale_ = 1.0f;
  mutable std::atomic<uint64_t> bytes_streamed_{0};
};

}  // namespace r1
