#include "kernels/activation.h"

#include <cmath>
#include <limits>

#include "kernels/vec_exp.h"

namespace r1::kernels {

void Softmax(float* x, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n >= (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* v = x + r * n;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) m = v[i] > m ? v[i] : m;
    if (m == -std::numeric_limits<float>::infinity()) {  // fully masked row
      for (int64_t i = 0; i < n; ++i) v[i] = 0.0f;
      continue;
    }
    const float inv = static_cast<float>(1.0 / ExpShifted(v, n, m, 1.0f, v));
    for (int64_t i = 0; i < n; ++i) v[i] *= inv;
  }
}

void SwiGLU(const float* gate, const float* up, float* out, int64_t n, float* sigmoid) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], e = std::exp(-g);
    if (sigmoid) sigmoid[i] = 1.0f / (1.0f + e);
    out[i] = g / (1.0f + e) * up[i];
  }
}

void SwiGLUBackward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                    const float* sigmoid) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], u = up[i], s = sigmoid ? sigmoid[i] : 1.0f / (1.0f + std::exp(-g));
    const float dg = dout[i] * u * s * (1.0f + g * (1.0f - s));
    dup[i] = dout[i] * g * s;
    dgate[i] = dg;
  }
}

}  // namespace r1::kernels
