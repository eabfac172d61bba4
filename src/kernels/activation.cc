#include "kernels/activation.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/threads.h"
#include "kernels/simd.h"
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

#if defined(__AVX512F__)
namespace {

// σ(g) = 1 / (1 + e^−g) on 16 lanes, with Exp16 (≤ 2 ulp; 0 and +inf outside the float range, so
// σ saturates to 1 and 0 without a special case; NaN stays NaN).
inline __m512 Sigmoid16(__m512 g) {
  const __m512 one = _mm512_set1_ps(1.0f);
  return _mm512_div_ps(one, _mm512_add_ps(one, Exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
}

}  // namespace
#endif

void SwiGLU(const float* gate, const float* up, float* out, int64_t n, float* sigmoid) {
#if defined(__AVX512F__)
  // Every element by the same 16-lane operations, the tail under a mask: an element's bits do not
  // depend on where it lies. Exp16 rather than the C library's expf halves the time (0.75 -> 0.36
  // ns an element without σ, 0.88 -> 0.50 with it, one Zen 4 core).
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = FirstLanes(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(m, gate + i), s = Sigmoid16(g);
    if (sigmoid) _mm512_mask_storeu_ps(sigmoid + i, m, s);
    _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(_mm512_mul_ps(g, s), _mm512_maskz_loadu_ps(m, up + i)));
  }
#else
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i], s = Sigmoid(g);
    if (sigmoid) sigmoid[i] = s;
    out[i] = g * s * up[i];
  }
#endif
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
  if (sigmoid) {
    for (int64_t i = 0; i < n; ++i) at(i, sigmoid[i]);
    return;
  }
#if defined(__AVX512F__)
  // σ as the forward computes it, 16 at a time.
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    const int64_t len = std::min<int64_t>(16, n - i0);
    alignas(64) float s[16];
    _mm512_store_ps(s, Sigmoid16(_mm512_maskz_loadu_ps(FirstLanes(len), gate + i0)));
    for (int64_t i = 0; i < len; ++i) at(i0 + i, s[i]);
  }
#else
  for (int64_t i = 0; i < n; ++i) at(i, Sigmoid(gate[i]));
#endif
}

}  // namespace r1::kernels
