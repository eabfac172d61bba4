#include "kernels/adamw.h"

#include <cmath>

namespace r1::kernels {

void AdamWStep(float* p, const float* g, float* m, float* v, int64_t n, const AdamWParams& a) {
  const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
  const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
  const float inv_bc1 = static_cast<float>(1.0 / bc1), inv_bc2 = static_cast<float>(1.0 / bc2);
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) {
    m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g[i];
    v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g[i] * g[i];
    const float mh = m[i] * inv_bc1, vh = v[i] * inv_bc2;
    p[i] -= a.lr * (mh / (std::sqrt(vh) + a.eps) + a.weight_decay * p[i]);
  }
}

}  // namespace r1::kernels
