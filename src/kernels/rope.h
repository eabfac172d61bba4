// Rotary position embedding with YaRN context extension (spec §4), as HF computes it.
//
// Frequencies: f_i = θ^(-2i/dim); with YaRN, inv_freq_i = f_i·(1 − ramp_i + ramp_i/s) where the
// ramp runs between the correction dims of beta_fast and beta_slow. cos/sin are multiplied by
// `attention_factor` (1 for DeepSeek-V3, whose mscale == mscale_all_dim); the softmax-scale
// correction mscale² is the model's business (see SoftmaxScale below).
#pragma once

#include <cstdint>
#include <vector>

namespace r1::kernels {

struct RopeParams {
  int64_t dim = 64;           // rotated dims per head (qk_rope_head_dim)
  double theta = 10000.0;     // rope_theta
  bool yarn = false;          // rope_scaling.type == "yarn"
  double factor = 1.0;        // s
  int64_t original_max_position = 4096;
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 0.0;        // 0 = absent
  double mscale_all_dim = 0.0;
};

// 0.1·m·ln(s) + 1 for s > 1, else 1.
double YarnGetMscale(double scale, double m = 1.0);

// inv_freq: (dim/2), in f32 as HF computes it.
std::vector<float> RopeInvFreq(const RopeParams& p);
// The factor on cos/sin.
float RopeAttentionFactor(const RopeParams& p);
// head_dim^-0.5, × mscale(s, mscale_all_dim)² under YaRN when mscale_all_dim is set.
float SoftmaxScale(const RopeParams& p, int64_t qk_head_dim);

// Interleaved (adjacent pairs, as the official weights were trained) rotation in place:
//   y[2i]   = x[2i]·cos − x[2i+1]·sin,   y[2i+1] = x[2i]·sin + x[2i+1]·cos,   angle = pos·inv_freq_i
// x: T tokens × n_heads vectors of `dim`, vector (t, h) at x + t·token_stride + h·head_stride.
// pos: (T) absolute positions. `inverse` rotates by −angle (the backward).
void RopeInterleaved(float* x, int64_t T, int64_t n_heads, int64_t token_stride,
                     int64_t head_stride, const int32_t* pos, const float* inv_freq, int64_t dim,
                     float attention_factor, bool inverse = false);

}  // namespace r1::kernels
