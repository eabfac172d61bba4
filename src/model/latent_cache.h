// The MLA latent KV cache of one sequence (spec §3.3, §3.4): per layer and token only the
// normalized kv latent c (R values) and the rotated shared rope key k_pe (Dr values) — not the
// per-head keys and values, which the absorbed attention never materializes.
#pragma once

#include <cstdint>
#include <vector>

#include "core/check.h"

namespace r1 {

class LatentCache {
 public:
  LatentCache(int64_t n_layers, int64_t capacity, int64_t kv_lora_rank, int64_t rope_dim)
      : capacity_(capacity), R_(kv_lora_rank), Dr_(rope_dim),
        c_(static_cast<size_t>(n_layers)), kpe_(static_cast<size_t>(n_layers)) {
    for (auto& v : c_) v.resize(static_cast<size_t>(capacity * R_));
    for (auto& v : kpe_) v.resize(static_cast<size_t>(capacity * Dr_));
  }

  int64_t length() const { return length_; }
  int64_t capacity() const { return capacity_; }
  int64_t kv_lora_rank() const { return R_; }
  int64_t rope_dim() const { return Dr_; }
  // Tokens [0, capacity) of a layer: c (capacity, R), kpe (capacity, Dr).
  float* c(int64_t layer) { return c_[static_cast<size_t>(layer)].data(); }
  float* kpe(int64_t layer) { return kpe_[static_cast<size_t>(layer)].data(); }
  // Marks n more tokens as written (after every layer has stored them).
  void Advance(int64_t n) {
    R1_CHECK_LE(length_ + n, capacity_);
    length_ += n;
  }
  // Forgets tokens from `n` on (the sequence restarts or is truncated).
  void Truncate(int64_t n) {
    R1_CHECK_LE(n, length_);
    length_ = n;
  }
  size_t bytes() const { return c_.size() * static_cast<size_t>(capacity_ * (R_ + Dr_)) * sizeof(float); }

 private:
  int64_t capacity_, R_, Dr_;
  int64_t length_ = 0;
  std::vector<std::vector<float>> c_, kpe_;
};

}  // namespace r1
