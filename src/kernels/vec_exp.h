// exp (and the max that shifts it) over arrays of floats, 16 lanes at a time with AVX-512
// (scalar code elsewhere).
//
// exp(x) = 2^n · e^r with n = round(x·log2 e) and r = x − n·ln 2 (ln 2 split in a high part exact
// in float and a low part, so r is exact to ~1 ulp), |r| ≤ ln2/2; e^r by its degree-7 Taylor
// polynomial (truncation < 6e-9 relative); 2^n applied with vscalefps, which also gives 0 below
// the float range and +inf above it. Measured against std::exp in double: ≤ 2 ulp over the whole
// float range (tests/kernels/vec_exp_test.cc). NaN stays NaN; −inf gives 0.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

// GCC 12 warns inside its own headers about the "undefined" pass-through operand of unmasked
// AVX-512 intrinsics (a false positive).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace r1::kernels {

#if defined(__AVX512F__)
inline __m512 Exp16(__m512 x) {
  // Outside [-110, 89] the result is 0 or +inf anyway; clamping keeps n in int range. max/min
  // return their second operand when either is NaN, so NaN passes through.
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);  // ln2 high: 16 bits
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-06f), r);  // ln2 − high
  __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}
#endif

// out[i] = exp(x[i] − shift) · scale; returns Σ exp(x[i] − shift) (before scaling), summed in
// double. out may alias x; out == nullptr only sums.
inline double ExpShifted(const float* x, int64_t n, float shift, float scale, float* out) {
  double sum = 0.0;
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 vs = _mm512_set1_ps(shift), vk = _mm512_set1_ps(scale);
  __m512d acc0 = _mm512_setzero_pd(), acc1 = _mm512_setzero_pd();
  auto add = [&](__m512 e) {  // the 16 floats into the two 8-lane double sums
    acc0 = _mm512_add_pd(acc0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    acc1 = _mm512_add_pd(acc1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  };
  for (; i + 16 <= n; i += 16) {
    const __m512 e = Exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
    add(e);
    if (out != nullptr) _mm512_storeu_ps(out + i, _mm512_mul_ps(e, vk));
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(m, Exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs)));
    add(e);
    if (out != nullptr) _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(e, vk));
    i = n;
  }
  sum = _mm512_reduce_add_pd(_mm512_add_pd(acc0, acc1));
#endif
  for (; i < n; ++i) {
    const float e = std::exp(x[i] - shift);
    sum += static_cast<double>(e);
    if (out != nullptr) out[i] = e * scale;
  }
  return sum;
}

// The largest of x[0..n) (−inf for n = 0), 16 lanes at a time; NaNs are skipped (a row with one
// still gives NaN through ExpShifted). The softmax shift for cross-entropy, KL and sampling.
inline float MaxOf(const float* x, int64_t n) {
  float m = -INFINITY;
  int64_t i = 0;
#if defined(__AVX512F__)
  if (n >= 16) {
    __m512 acc = _mm512_set1_ps(-INFINITY);
    for (; i + 16 <= n; i += 16) acc = _mm512_max_ps(_mm512_loadu_ps(x + i), acc);
    m = _mm512_reduce_max_ps(acc);
  }
#endif
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

}  // namespace r1::kernels

#pragma GCC diagnostic pop
