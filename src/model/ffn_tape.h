// The feed-forward activations of a rollout, kept for the policy update that follows it.
//
// A GRPO update's first optimizer step runs on the very weights the rollout sampled with, so its
// forward recomputes, token for token, what the rollout's prefill and decode steps already
// computed. The feed-forward blocks (dense MLPs and DeepSeekMoE) are most of that work: a rollout
// given a tape records, for every token it feeds through the model, each layer's output and what
// the backward of its feed-forward block reads (gate and up pre-activations of every expert that
// ran, the routed experts' outputs, the router's scores and choices). The update's forward then
// recomputes attention and the norms from the recorded layer inputs but takes the feed-forward
// activations from the tape instead of multiplying again (TrainForwardBackward with
// LossOptions::tape). Up to the rounding of the products' summation order, the two forwards are
// the same function of the same weights and tokens; the routing is the rollout's own, the one the
// sampled tokens were drawn under.
//
// Rows: one per token fed through the model, numbered by the caller (Append); each layer keeps its
// fields per row. Rows are written by whichever thread computes them, each by one thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "core/check.h"
#include "core/memory.h"
#include "model/config.h"
#include "model/weights.h"

namespace r1 {

class FfnTape {
 public:
  FfnTape(const ModelConfig& c, const ModelWeights& w);

  // Drops every row (keeping the memory for the next rows).
  void Clear() { rows_ = 0; }
  // Adds n rows; returns the first one's index.
  int64_t Append(int64_t n);
  int64_t rows() const { return rows_; }
  // Bytes one row takes, over all layers.
  int64_t RowBytes() const;

  // Copies n floats into a row with streaming stores where the row allows (the rows are read
  // only after the rollout: through the cache they would evict the weights). The writing thread
  // calls Fence() after its writes, before another thread may read them.
  static void Record(const float* src, int64_t n, float* dst);
  static void Fence();

  // Row r of layer l. Every layer: h_out (C), the layer's output (the next layer's input). Dense
  // layers: gu (2F), the MLP's gate then up pre-activations. MoE layers: scores (E), the router's
  // sigmoid scores; idx, wts (K), the selected experts and their gate weights, in the router's
  // order; routed_gu (2F per selected expert k) and routed_y (C per k), expert k's gate/up
  // pre-activations and its output; gu (2F of the shared experts), when the layer has them.
  float* h_out(int64_t l, int64_t r) { return At(layers_[l].h_out, l, r, C_); }
  float* gu(int64_t l, int64_t r) { return At(layers_[l].gu, l, r, layers_[l].gu_width); }
  float* scores(int64_t l, int64_t r) { return At(layers_[l].scores, l, r, E_); }
  int32_t* idx(int64_t l, int64_t r) { return At(layers_[l].idx, l, r, K_); }
  float* wts(int64_t l, int64_t r) { return At(layers_[l].wts, l, r, K_); }
  float* routed_gu(int64_t l, int64_t r, int64_t k) {
    return At(layers_[l].routed_gu, l, r, K_ * layers_[l].routed_gu_width) + k * layers_[l].routed_gu_width;
  }
  float* routed_y(int64_t l, int64_t r, int64_t k) { return At(layers_[l].routed_y, l, r, K_ * C_) + k * C_; }

  const float* h_out(int64_t l, int64_t r) const { return At(layers_[l].h_out, l, r, C_); }
  const float* gu(int64_t l, int64_t r) const { return At(layers_[l].gu, l, r, layers_[l].gu_width); }
  const float* scores(int64_t l, int64_t r) const { return At(layers_[l].scores, l, r, E_); }
  const int32_t* idx(int64_t l, int64_t r) const { return At(layers_[l].idx, l, r, K_); }
  const float* wts(int64_t l, int64_t r) const { return At(layers_[l].wts, l, r, K_); }
  const float* routed_gu(int64_t l, int64_t r, int64_t k) const {
    return At(layers_[l].routed_gu, l, r, K_ * layers_[l].routed_gu_width) + k * layers_[l].routed_gu_width;
  }
  const float* routed_y(int64_t l, int64_t r, int64_t k) const {
    return At(layers_[l].routed_y, l, r, K_ * C_) + k * C_;
  }

 private:
  struct Layer {
    bool moe = false;
    int64_t gu_width = 0;         // 2F of the dense MLP or the shared experts (0: none)
    int64_t routed_gu_width = 0;  // 2F of one routed expert (MoE layers)
    ScratchVector<float> h_out, gu, scores, wts, routed_gu, routed_y;
    std::vector<int32_t> idx;
  };
  // Row r of a field v of layer l, `width` elements a row (const when v is).
  template <class V>
  auto At(V& v, int64_t l, int64_t r, int64_t width) const -> decltype(v.data()) {
    R1_CHECK(width > 0) << "layer " << l << " of the tape has no such field";
    R1_CHECK(r >= 0 && r < rows_) << "tape row " << r << " of layer " << l << " (" << rows_ << " rows)";
    return v.data() + r * width;
  }

  int64_t C_ = 0, E_ = 0, K_ = 0, rows_ = 0;
  std::vector<Layer> layers_;
};

// Where a batch of tokens goes on a tape: rows[t] for its token t (tape == nullptr: nowhere).
struct FfnTapeRows {
  FfnTape* tape = nullptr;
  const int64_t* rows = nullptr;
};

}  // namespace r1
