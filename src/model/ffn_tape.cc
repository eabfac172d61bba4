#include "model/ffn_tape.h"

#include <algorithm>
#include <cstdint>

#include "kernels/simd.h"

namespace r1 {

FfnTape::FfnTape(const ModelConfig& c, const ModelWeights& w)
    : C_(c.hidden_size), E_(c.n_routed_experts), K_(c.num_experts_per_tok) {
  for (const LayerWeights& lw : w.layers) {
    Layer t;
    t.moe = lw.is_moe;
    if (!lw.is_moe) {
      t.gu_width = 2 * lw.mlp.gate_proj.rows();
    } else {
      if (lw.moe.has_shared) t.gu_width = 2 * lw.moe.shared_experts.gate_proj.rows();
      R1_CHECK(!lw.moe.experts.empty());
      t.routed_gu_width = 2 * lw.moe.experts[0].gate_proj.rows();
    }
    layers_.push_back(std::move(t));
  }
}

int64_t FfnTape::Append(int64_t n) {
  R1_CHECK(n >= 0);
  const int64_t first = rows_;
  rows_ += n;
  const auto grow = [&](auto& v, int64_t width) {
    const auto need = static_cast<size_t>(rows_ * width);
    if (v.size() < need) v.resize(need);
  };
  for (Layer& t : layers_) {
    grow(t.h_out, C_);
    grow(t.gu, t.gu_width);
    if (!t.moe) continue;
    grow(t.scores, E_);
    grow(t.idx, K_);
    grow(t.wts, K_);
    grow(t.routed_gu, K_ * t.routed_gu_width);
    grow(t.routed_y, K_ * C_);
  }
  return first;
}

void FfnTape::Record(const float* src, int64_t n, float* dst) {
#if defined(__AVX512F__)
  if (reinterpret_cast<uintptr_t>(dst) % 64 == 0 && n % 16 == 0) {
    for (int64_t i = 0; i < n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    return;
  }
#endif
  std::copy_n(src, n, dst);
}

void FfnTape::Fence() {
#if defined(__SSE__)
  _mm_sfence();
#endif
}

int64_t FfnTape::RowBytes() const {
  int64_t floats = 0;
  for (const Layer& t : layers_) {
    floats += C_ + t.gu_width;
    if (t.moe) floats += E_ + 2 * K_ + K_ * (t.routed_gu_width + C_);
  }
  return floats * 4;
}

}  // namespace r1
