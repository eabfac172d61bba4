#include "kernels/activation.h"

#include <cmath>
#include <limits>

#include "core/threads.h"
#include "kernels/vec_exp.h"

namespace r1::kernels {

void Softmax(float* x, int64_t rows, int64_t n) {
  ParallelFor(rows, rows * n >= (1 << 16), [&](int64_t r) {
    float* v = x + r * n;
    const float m = MaxOf(v, n);                         // 16 lanes at a time: the plain loop was one serial chain
    if (m == -std::numeric_limits<float>::infinity()) {  // fully masked row
      for (int64_t i = 0; i < n; ++i) v[i] = 0.0f;
      return;
    }
    const float inv = static_cast<float>(1.0 / ExpShifted(v, n, m, 1.0f, v));
    for (int64_t i = 0; i < n; ++i) v[i] *= inv;
  });
}

namespace {

// SwiGLU's elements [i, end), the reference the 16-lane loop matches bit for bit. Out of line:
// a call inside the vector loop makes the compiler keep its vector registers on the stack.
[[gnu::noinline, gnu::cold]] void SwiGLUScalar(const float* gate, const float* up, float* out, float* sigmoid,
                                               int64_t i, int64_t end) {
  for (; i < end; ++i) {
    const float g = gate[i], s = 1.0f / (1.0f + std::exp(-g));
    if (sigmoid) sigmoid[i] = s;
    out[i] = g * s * up[i];
  }
}

}  // namespace

void SwiGLU(const float* gate, const float* up, float* out, int64_t n, float* sigmoid) {
  int64_t i = 0;
#if defined(__AVX512F__)
  // SwiGLUScalar's operations on 16 lanes, with ExpAsLibm16Fast for std::exp: the same bits. A
  // block with a lane the fast path does not cover (|gate| >= 88, inf, NaN) goes to SwiGLUScalar.
  // With the table loaded once: ~0.9 -> 0.66 ns an element (one Zen 4 core, 4096, no sigmoid).
  const ExpfLanes tab = LoadExpfLanes();
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i), neg = _mm512_sub_ps(_mm512_setzero_ps(), g);
    if (ExpfSpecialLanes(neg)) [[unlikely]] {
      SwiGLUScalar(gate, up, out, sigmoid, i, i + 16);
      continue;
    }
    const __m512 s = _mm512_div_ps(one, _mm512_add_ps(one, ExpAsLibm16Fast(neg, tab)));
    if (sigmoid) _mm512_storeu_ps(sigmoid + i, s);
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(g, s), _mm512_loadu_ps(up + i)));
  }
#endif
  SwiGLUScalar(gate, up, out, sigmoid, i, n);
}

void SwiGLUBackward(const float* gate, const float* up, const float* dout, float* dgate, float* dup, int64_t n,
                    const float* sigmoid) {
  auto at = [&](int64_t i, float s) {
    const float g = gate[i], u = up[i];
    const float dg = dout[i] * u * s * (1.0f + g * (1.0f - s));
    dup[i] = dout[i] * g * s;
    dgate[i] = dg;
  };
  // With the forward's sigmoid the loop has no call and the compiler vectorizes it (same
  // operations per element).
  if (sigmoid)
    for (int64_t i = 0; i < n; ++i) at(i, sigmoid[i]);
  else
    for (int64_t i = 0; i < n; ++i) at(i, Sigmoid(gate[i]));
}

}  // namespace r1::kernels
