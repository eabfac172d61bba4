#include "kernels/rope.h"

#include <algorithm>
#include <cmath>

#include "core/threads.h"

namespace r1::kernels {

double YarnGetMscale(double scale, double m) {
  return scale <= 1.0 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
}

std::vector<float> RopeInvFreq(const RopeParams& p) {
  const int64_t half = p.dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // HF: 1 / base ** (arange(0, dim, 2).float() / dim), in f32.
    const float expo = static_cast<float>(2 * i) / static_cast<float>(p.dim);
    inv[i] = 1.0f / std::pow(static_cast<float>(p.theta), expo);
  }
  if (!p.yarn) return inv;
  // Correction range: the dims whose wavelength fits beta_fast / beta_slow rotations in L0.
  const double two_pi = 2.0 * M_PI;
  auto corr_dim = [&](double n_rot) {
    return static_cast<double>(p.dim) *
           std::log(static_cast<double>(p.original_max_position) / (n_rot * two_pi)) /
           (2.0 * std::log(p.theta));
  };
  double low = std::max(std::floor(corr_dim(p.beta_fast)), 0.0);
  double high = std::min(std::ceil(corr_dim(p.beta_slow)), static_cast<double>(p.dim - 1));
  if (low == high) high += 0.001;
  for (int64_t i = 0; i < half; ++i) {
    const float ramp = std::clamp(static_cast<float>((static_cast<double>(i) - low) / (high - low)),
                                  0.0f, 1.0f);
    const float extrapolation = 1.0f - ramp;  // weight of the original frequency
    const float interp = inv[i] / static_cast<float>(p.factor);
    inv[i] = interp * (1.0f - extrapolation) + inv[i] * extrapolation;
  }
  return inv;
}

float RopeAttentionFactor(const RopeParams& p) {
  if (!p.yarn) return 1.0f;
  if (p.mscale != 0.0 && p.mscale_all_dim != 0.0)
    return static_cast<float>(YarnGetMscale(p.factor, p.mscale) /
                              YarnGetMscale(p.factor, p.mscale_all_dim));
  return static_cast<float>(YarnGetMscale(p.factor));
}

float SoftmaxScale(const RopeParams& p, int64_t qk_head_dim) {
  double s = 1.0 / std::sqrt(static_cast<double>(qk_head_dim));
  if (p.yarn && p.mscale_all_dim != 0.0) {
    const double m = YarnGetMscale(p.factor, p.mscale_all_dim);
    s *= m * m;
  }
  return static_cast<float>(s);
}

void RopeInterleaved(float* x, int64_t T, int64_t n_heads, int64_t token_stride,
                     int64_t head_stride, const int32_t* pos, const float* inv_freq, int64_t dim,
                     float attention_factor, bool inverse) {
  const int64_t half = dim / 2;
  ParallelFor(T, T * n_heads * dim >= (1 << 15), [&](int64_t t) {
    for (int64_t i = 0; i < half; ++i) {
      // Angle in f32 as HF does (positions × inv_freq in f32, then cos/sin).
      const float angle = static_cast<float>(pos[t]) * inv_freq[i];
      const float c = std::cos(angle) * attention_factor;
      const float s = (inverse ? -std::sin(angle) : std::sin(angle)) * attention_factor;
      for (int64_t h = 0; h < n_heads; ++h) {
        float* v = x + t * token_stride + h * head_stride;
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
      }
    }
  });
}

}  // namespace r1::kernels
