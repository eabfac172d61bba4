#include "kernels/norm.h"

#include <cmath>

namespace r1::kernels {

void RmsNorm(const float* x, const float* w, int64_t T, int64_t C, float eps, float* out,
             float* rstd) {
#pragma omp parallel for schedule(static) if (T * C >= (1 << 16))
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    float* yr = out + t * C;
    double ss = 0.0;  // wide accumulator: C can be 7168
    for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xr[c]) * xr[c];
    const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
    for (int64_t c = 0; c < C; ++c) yr[c] = w[c] * (xr[c] * r);
    if (rstd) rstd[t] = r;
  }
}

void RmsNormBackward(const float* x, const float* w, const float* rstd, const float* dy, int64_t T, int64_t C,
                     float* dx, float* dw) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * C;
    const float* g = dy + t * C;
    const float r = rstd[t];
    double dot = 0.0;  // Σ_c (w⊙dy)_c x_c
    for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(w[c]) * g[c] * xr[c];
    const float k = static_cast<float>(dot / static_cast<double>(C)) * r * r * r;
    float* dxr = dx + t * C;
    for (int64_t c = 0; c < C; ++c) {
      dxr[c] += r * w[c] * g[c] - xr[c] * k;
      dw[c] += g[c] * xr[c] * r;
    }
  }
}

}  // namespace r1::kernels
