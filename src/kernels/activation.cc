#include "kernels/activation.h"

#include <cmath>
#include <limits>

#include "core/threads.h"
#include "kernels/vec_exp.h"

namespace r1::kernels {

void Softmax(float* x, int64_t rows, int64_t n) {
  ParallelFor(rows, rows * n >= (1 << 16), [&](int64_t r) {
    float* v = x + r * n;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; ++i) m = v[i] > m ? v[i] : m;
    if (m == -std::numeric_limits<float>::infinity()) {  // fully masked row
      for (int64_t i = 0; i < n; ++i) v[i] = 0.0f;
      return;
    }
    const float inv = static_cast<float>(1.0 / ExpShifted(v, n, m, 1.0f, v));
    for (int64_t i = 0; i < n; ++i) v[i] *= inv;
  });
}

void SwiGLU(const float* gate, const float* up, float* out, int64_t n, float* sigmoid) {
  int64_t i = 0;
#if defined(__AVX512F__)
  // The scalar loop's operations on 16 lanes, with ExpAsLibm16 for std::exp: the same bits.
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 d = _mm512_add_ps(one, ExpAsLibm16(_mm512_sub_ps(_mm512_setzero_ps(), g)));
    if (sigmoid) _mm512_storeu_ps(sigmoid + i, _mm512_div_ps(one, d));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, d), _mm512_loadu_ps(up + i)));
  }
#endif
  for (; i < n; ++i) {
    const float g = gate[i], e = std::exp(-g);
    if (sigmoid) sigmoid[i] = 1.0f / (1.0f + e);
    out[i] = g / (1.0f + e) * up[i];
  }
}

void SwiGLUBackward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                    const float* sigmoid) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], u = up[i], s = sigmoid ? sigmoid[i] : Sigmoid(g);
    const float dg = dout[i] * u * s * (1.0f + g * (1.0f - s));
    dup[i] = dout[i] * g * s;
    dgate[i] = dg;
  }
}

}  // namespace r1::kernels
