// RMSNorm, computed in f32: y = w ⊙ x / sqrt(mean(x²) + eps)   (spec §2).
#pragma once

#include <cmath>
#include <cstdint>

namespace r1::kernels {

// x: (T, C); w: (C); out: (T, C) (may alias x); rstd: (T) saved for backward, may be null.
void RmsNorm(const float* x, const float* w, int64_t T, int64_t C, float eps, float* out,
             float* rstd = nullptr);

// Backward of RmsNorm. Reads x, w and the saved rstd.
// dx (T, C) += r·(w⊙dy) − x·r³·mean((w⊙dy)⊙x);  dw (C) += Σ_t dy⊙x·r. dx may not alias dy.
void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t T, int64_t C,
                     float* dx, float* dw);

namespace ref {
template <typename F>
void RmsNorm(const F* x, const F* w, int64_t T, int64_t C, double eps, F* out) {
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(x[t * C + c]) * x[t * C + c];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(C) + eps);
    for (int64_t c = 0; c < C; ++c) out[t * C + c] = static_cast<F>(w[c] * (x[t * C + c] * r));
  }
}
// y = RmsNorm(x) backward in any type (double for finite-difference checks); assigns dx, adds dw.
template <typename F>
void RmsNormBackward(const F* x, const F* w, const F* dy, int64_t T, int64_t C, double eps, F* dx, F* dw) {
  for (int64_t t = 0; t < T; ++t) {
    double ss = 0;
    for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(x[t * C + c]) * x[t * C + c];
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(C) + eps);
    double dot = 0;
    for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(w[c]) * dy[t * C + c] * x[t * C + c];
    for (int64_t c = 0; c < C; ++c) {
      dx[t * C + c] = static_cast<F>(r * w[c] * dy[t * C + c] - x[t * C + c] * r * r * r * dot / static_cast<double>(C));
      dw[c] += static_cast<F>(dy[t * C + c] * x[t * C + c] * r);
    }
  }
}
}  // namespace ref

}  // namespace r1::kernels
